"""The pseudo-GT store on :mod:`wsjds.artifacts.hdf5`: what rule pseudo_gt writes (:mod:`wsjds.stages.pseudo_gt`) and
Fast R-CNN training reads.

Artifact ``wsjds.pseudo_gt`` (results/{ds}/{method}/pseudo_gt.h5): per image, ``boxes`` (K, 4)
float32 (package convention), ``labels`` (K,) int64 (0-based classes), ``scores`` (K,) float32.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from wsjds.artifacts.hdf5 import FieldSpec, RaggedStore

PSEUDO_GT_FORMAT = "wsjds.pseudo_gt"
PSEUDO_GT_VERSION = 1
PSEUDO_GT_FIELDS: Mapping[str, FieldSpec] = {
    "boxes": FieldSpec(np.float32, (4,)),
    "labels": FieldSpec(np.int64, ()),
    "scores": FieldSpec(np.float32, ()),
}


class PseudoGTStore(RaggedStore):
    """Read-only pseudo GT: ``boxes, labels, scores = store[image_id]`` ((K, 4), (K,), (K,))."""

    FORMAT, VERSIONS = PSEUDO_GT_FORMAT, (PSEUDO_GT_VERSION,)

    def __getitem__(self, image_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self._ragged.read(image_id)
        return rows["boxes"], rows["labels"], rows["scores"]
