"""The proposal store: one HDF5 file per (dataset, split) on top of :mod:`wsjds.hdf5`.

Fields: ``boxes`` (K, 4) float32 in the package box convention and ``scores`` (K,) float32 (0
where the source has none), sorted by descending score. ``with ProposalStore.open(path) as store:
boxes, scores = store[image_id]``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from wsjds.errors import ArtifactError
from wsjds.hdf5 import FieldSpec, Header, RaggedStore, RaggedWriter, TypedWriter
from wsjds.proposals.postprocess import check_ids, validate_proposals

log = logging.getLogger(__name__)

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


class ProposalWriter(TypedWriter):
    """Write a proposal file atomically: ``with ProposalWriter(...) as w: w.append(id, w, h, boxes, scores)``."""

    def __init__(self, path: str | Path, *, dataset: str, split: str, source: str,
                 parameters: Mapping[str, Any]):
        header = Header(format=PROPOSALS_FORMAT, version=PROPOSALS_VERSION, dataset=dataset, split=split,
                        source=source, parameters=dict(parameters))
        self._writer = RaggedWriter(path, header, PROPOSAL_FIELDS)

    def append(self, image_id: str, width: int, height: int, boxes: np.ndarray, scores: np.ndarray) -> None:
        self._writer.append(image_id, width, height, boxes=boxes, scores=scores)


def merge_shards(shard_paths: Sequence[str | Path], out: str | Path, *, expected_ids: Sequence[str],
                 dataset: str, split: str, image_size: Callable[[str], tuple[int, int]] | None = None,
                 progress: bool = True) -> int:
    """Join shard stores into one store of the whole split, written in split order.

    Every id of ``expected_ids`` must be in exactly one shard and no other id may appear; shards
    must agree on source and parameters (apart from the shard index). ``image_size`` (the
    dataset's) cross-checks each stored size. Every image is re-validated. Returns the image count.
    """
    if not shard_paths:
        raise ValueError("merge_shards needs at least one shard")
    stores = [ProposalStore.open(p, dataset=dataset, split=split) for p in shard_paths]
    try:
        first = stores[0].header
        base_parameters = _without_shard(first.parameters)
        owner: dict[str, ProposalStore] = {}
        found: list[str] = []
        for store in stores:
            if store.header.source != first.source or _without_shard(store.parameters) != base_parameters:
                raise ArtifactError(
                    f"shard was made with source {store.header.source!r} and parameters "
                    f"{_without_shard(store.parameters)}, but {str(stores[0].path)!r} with {first.source!r} and "
                    f"{base_parameters}; rebuild the shards with one configuration", path=store.path)
            for image_id in store.image_ids:
                found.append(image_id)
                owner.setdefault(image_id, store)
        check_ids(found, expected_ids, path=", ".join(str(p) for p in shard_paths), split=split)
        max_per_image = int(base_parameters.get("max_per_image", sys.maxsize))
        with ProposalWriter(out, dataset=dataset, split=split, source=first.source,
                            parameters=base_parameters) as writer:
            for image_id in tqdm(expected_ids, desc=f"merge {split}", file=sys.stderr, disable=not progress):
                store = owner[image_id]
                boxes, scores = store[image_id]
                width, height = store.image_size(image_id)
                if image_size is not None and image_size(image_id) != (width, height):
                    raise ArtifactError(f"stored image size {width}x{height} differs from the dataset's "
                                       f"{image_size(image_id)[0]}x{image_size(image_id)[1]}",
                                       path=store.path, image_id=image_id)
                validate_proposals(boxes, scores, width, height, max_per_image=max_per_image,
                                   image_id=image_id, path=store.path)
                writer.append(image_id, width, height, boxes, scores)
        log.info("merged %d shards into %s (%d images)", len(stores), out, len(expected_ids))
        return len(expected_ids)
    finally:
        for store in stores:
            store.close()


def _without_shard(parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in parameters.items() if k != SHARD_PARAMETER}
