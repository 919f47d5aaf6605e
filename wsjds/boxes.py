"""The package's one box convention and the conversions at the I/O boundaries.

Inside wsjds every box is a float32 ``(x1, y1, x2, y2)`` in continuous, 0-based pixel
coordinates of the original image: pixel column ``i`` spans ``[i, i + 1)``. A box array has
shape ``(N, 4)``. With this convention plain continuous IoU equals the PASCAL devkit's "+1" IoU
on the 1-based inclusive XML boxes, so no "+1" appears anywhere in the package.
"""

from __future__ import annotations

import numpy as np

BOX_CONVENTION = "xyxy_continuous_0based"


def from_voc_xml(xmin: float, ymin: float, xmax: float, ymax: float) -> tuple[float, float, float, float]:
    """VOC XML (1-based, inclusive) -> package convention: ``(xmin - 1, ymin - 1, xmax, ymax)``."""
    return (xmin - 1.0, ymin - 1.0, float(xmax), float(ymax))


def to_voc_xml(boxes: np.ndarray) -> np.ndarray:
    """Package convention -> VOC XML ``(xmin, ymin, xmax, ymax)``, 1-based inclusive. Shape (N, 4)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([boxes[:, 0] + 1, boxes[:, 1] + 1, boxes[:, 2], boxes[:, 3]], axis=1)


def from_matlab_yxyx(boxes: np.ndarray) -> np.ndarray:
    """MCG / Selective Search / EdgeBoxes ``.mat`` boxes, 1-based ``(y1, x1, y2, x2)`` inclusive,
    -> package convention. Shape (N, 4) -> (N, 4) float32."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return from_xyxy_inclusive(boxes[:, [1, 0, 3, 2]] - 1.0)


def from_xyxy_inclusive(boxes: np.ndarray) -> np.ndarray:
    """0-based inclusive pixel boxes (Detectron / py-faster-rcnn pickles) -> package convention."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = boxes.copy()
    out[:, 2:] += 1.0
    return out.astype(np.float32)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """Package convention -> COCO ``[x, y, w, h]`` (same continuous coordinates). Shape (N, 4)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def xywh_to_xyxy(boxes: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """COCO ``[x, y, w, h]`` -> package convention, computed in float64 and returned as ``dtype``
    (float32 for stores; float64 where boxes are matched against an IoU threshold). Shape (N, 4)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1).astype(dtype)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of (N, 4) boxes; degenerate boxes have area 0."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) boxes -> (N, M) float64, 0 where the union is empty."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    inter = box_intersection(a, b)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas of (N, 4) and (M, 4) boxes -> (N, M) float64."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)


def mask_to_box(mask: np.ndarray) -> np.ndarray | None:
    """Tight box of a boolean (H, W) mask in package convention, or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)
