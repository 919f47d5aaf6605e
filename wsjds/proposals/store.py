"""The proposal store: one HDF5 file per (dataset, split) on top of :mod:`wsjds.artifacts.hdf5`.

Fields: ``boxes`` (K, 4) float32 in the package box convention and ``scores`` (K,) float32 (0
where the source has none), sorted by descending score. ``with ProposalStore.open(path) as store:
boxes, scores = store[image_id]``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from wsjds.errors import ArtifactError
from wsjds.artifacts.hdf5 import FieldSpec, Header, RaggedStore, RaggedWriter, TypedWriter
from wsjds.proposals.postprocess import validate_proposals
from wsjds.artifacts.shards import merge_shards

PROPOSALS_FORMAT = "wsjds.proposals"
PROPOSALS_VERSION = 1
PROPOSAL_FIELDS: Mapping[str, FieldSpec] = {
    "boxes": FieldSpec(np.float32, (4,)),
    "scores": FieldSpec(np.float32, ()),
}
# Parameter recorded in shard files only; dropped when shards are merged.
SHARD_PARAMETER = "shard"


class ProposalStore(RaggedStore):
    """Read-only proposals of one split with O(1) access by image id (see module docstring)."""

    FORMAT, VERSIONS = PROPOSALS_FORMAT, (PROPOSALS_VERSION,)

    def __getitem__(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes (K, 4) float32, scores (K,) float32)`` of one image."""
        rows = self._ragged.read(image_id)
        return rows["boxes"], rows["scores"]

    def num_boxes(self, image_id: str) -> int:
        return self.num_rows(image_id)

    def check_rows(self, image_id: str, rows: Mapping[str, np.ndarray]) -> None:
        width, height = self.image_size(image_id)
        max_per_image = int(self.parameters.get("max_per_image", sys.maxsize))
        validate_proposals(rows["boxes"], rows["scores"], width, height, max_per_image=max_per_image,
                           image_id=image_id, path=self.path)


class ProposalWriter(TypedWriter):
    """Write a proposal file atomically: ``with ProposalWriter(...) as w: w.append(id, w, h, boxes, scores)``."""

    def __init__(self, path: str | Path, *, dataset: str, split: str, source: str,
                 parameters: Mapping[str, Any]):
        header = Header(format=PROPOSALS_FORMAT, version=PROPOSALS_VERSION, dataset=dataset, split=split,
                        source=source, parameters=dict(parameters))
        self._writer = RaggedWriter(path, header, PROPOSAL_FIELDS)

    def append(self, image_id: str, width: int, height: int, boxes: np.ndarray, scores: np.ndarray) -> None:
        self._writer.append(image_id, width, height, boxes=boxes, scores=scores)


def merge_proposal_shards(shard_paths: Sequence[str | Path], out: str | Path, *, expected_ids: Sequence[str],
                          dataset: str, split: str, image_size: Callable[[str], tuple[int, int]] | None = None,
                          progress: bool = True) -> int:
    """Join proposal shards into one store of the whole split (:func:`wsjds.artifacts.shards.merge_shards`),
    re-validating every image (:meth:`ProposalStore.check_rows`); ``image_size`` (the dataset's)
    cross-checks each stored size."""

    def check_size(store: RaggedStore, image_id: str, rows: Mapping[str, np.ndarray]) -> None:
        width, height = store.image_size(image_id)
        if image_size(image_id) != (width, height):
            expected_width, expected_height = image_size(image_id)
            raise ArtifactError(f"stored image size {width}x{height} differs from the dataset's "
                                f"{expected_width}x{expected_height}", path=store.path, image_id=image_id)

    return merge_shards(ProposalStore, shard_paths, out, expected_ids, dataset=dataset, split=split,
                        shard_parameters=(SHARD_PARAMETER,), check_image=None if image_size is None else check_size,
                        progress=progress)
