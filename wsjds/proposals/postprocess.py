"""The one proposal post-processing and validation path, shared by Selective Search and every importer.

Order of operations (ref §7, with clipping added so that rounding in other tools is not fatal):
clip to the image, drop exact duplicates, drop boxes with a side below ``min_side``, sort by score
(descending, stable: equal scores keep the source's order), cap at ``max_per_image``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping
from pathlib import Path

import numpy as np

from wsjds.errors import DatasetError

@dataclass(frozen=True)
class ProposalPolicy:
    """Post-processing settings (config ``proposals``).

    ``min_side``: boxes whose width or height (continuous pixels) is below this are dropped.
    ``max_per_image``: at most this many boxes are kept per image, the highest-scored first.
    ``whole_image_fallback``: an image left with no box gets the whole-image box instead of an error.
    """

    min_side: float
    max_per_image: int
    whole_image_fallback: bool = False

    def __post_init__(self) -> None:
        if self.min_side < 0:
            raise ValueError(f"min_side must be >= 0, got {self.min_side}")
        if self.max_per_image < 1:
            raise ValueError(f"max_per_image must be >= 1, got {self.max_per_image}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "ProposalPolicy":
        """``{min_side, max_per_image, whole_image_fallback}`` as the field types (the store records them)."""
        return cls(float(cfg["min_side"]), int(cfg["max_per_image"]), bool(cfg["whole_image_fallback"]))

    def as_dict(self) -> dict[str, float | int | bool]:
        """JSON-ready form, recorded in the store's ``parameters``."""
        return {"min_side": self.min_side, "max_per_image": self.max_per_image,
                "whole_image_fallback": self.whole_image_fallback}


def postprocess(boxes: np.ndarray, scores: np.ndarray | None, width: int, height: int,
                policy: ProposalPolicy, *, image_id: str, path: str | Path | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Clean one image's proposals and validate the result.

    ``boxes`` (K, 4) in package convention; ``scores`` (K,) or None (all 0). Returns boxes (K', 4)
    float32 and scores (K',) float32, sorted by descending score, 1 <= K' <= ``max_per_image``.
    ``path`` names the source file in errors.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4), np.float32)
    scores = (np.zeros(len(boxes), np.float32) if scores is None
              else np.asarray(scores, dtype=np.float32).reshape(-1))
    if scores.shape[0] != boxes.shape[0]:
        raise DatasetError(f"{boxes.shape[0]} boxes but {scores.shape[0]} scores", path=path, image_id=image_id)
    bad = ~(np.isfinite(boxes).all(axis=1) & np.isfinite(scores))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{int(bad.sum())} proposals have NaN or infinite values, e.g. row {k}: "
                           f"box {boxes[k].tolist()}, score {float(scores[k])}", path=path, image_id=image_id)
    n_source = len(boxes)

    boxes = _clip(boxes, width, height)
    order = np.argsort(-scores, kind="stable")  # highest score first; ties keep the source order
    boxes, scores = boxes[order], scores[order]
    boxes, scores = _drop_duplicates(boxes, scores)
    n_unique = len(boxes)

    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    keep = (w >= policy.min_side) & (h >= policy.min_side) & (w > 0) & (h > 0)
    boxes, scores = boxes[keep][: policy.max_per_image], scores[keep][: policy.max_per_image]

    if len(boxes) == 0:
        if not policy.whole_image_fallback:
            raise DatasetError(
                f"no proposal left after post-processing ({n_source} in the source, {n_unique} after clipping "
                f"to the {width}x{height} image and removing duplicates, 0 with both sides >= "
                f"{policy.min_side} px); lower proposals.min_side or set proposals.whole_image_fallback: true",
                path=path, image_id=image_id)
        boxes = np.array([[0, 0, width, height]], dtype=np.float32)
        scores = np.zeros(1, dtype=np.float32)

    validate_proposals(boxes, scores, width, height, max_per_image=policy.max_per_image,
                       image_id=image_id, path=path)
    return boxes, scores


def validate_proposals(boxes: np.ndarray, scores: np.ndarray, width: int, height: int, *,
                       max_per_image: int, image_id: str, path: str | Path | None = None) -> None:
    """Check one image's stored proposals: shapes, float32, 1 <= K <= ``max_per_image``, finite,
    inside ``[0, width] x [0, height]``, ``x2 > x1`` and ``y2 > y1``. Raises DatasetError otherwise."""
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
        raise DatasetError(f"expected boxes (K, 4) and scores (K,), found {boxes.shape} and {scores.shape}",
                           path=path, image_id=image_id)
    if boxes.dtype != np.float32 or scores.dtype != np.float32:
        raise DatasetError(f"expected float32 boxes and scores, found {boxes.dtype} and {scores.dtype}",
                           path=path, image_id=image_id)
    if not 1 <= len(boxes) <= max_per_image:
        raise DatasetError(f"{len(boxes)} proposals, expected between 1 and {max_per_image}",
                           path=path, image_id=image_id)
    checks = (
        (~np.isfinite(boxes).all(axis=1) | ~np.isfinite(scores), "NaN or infinite values"),
        ((boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > width) | (boxes[:, 3] > height),
         f"a box outside the {width}x{height} image"),
        ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]), "x2 <= x1 or y2 <= y1"),
    )
    for bad, what in checks:
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"{int(bad.sum())} proposals with {what}, e.g. row {k}: box {boxes[k].tolist()}",
                               path=path, image_id=image_id)


def _clip(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip (K, 4) boxes to ``[0, width] x [0, height]``."""
    out = boxes.copy()
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    return out


def _drop_duplicates(boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the first occurrence of each exact (x1, y1, x2, y2), preserving order."""
    if len(boxes) == 0:
        return boxes, scores
    _, first = np.unique(boxes, axis=0, return_index=True)
    first.sort()
    return boxes[first], scores[first]
