"""Vectorised "best ground truth per detection": the step every box metric starts from.

For each detection, among the ground-truth boxes of the same image and class (difficult ones
included, as in the devkit), the one with the largest IoU; ties go to the first in annotation
order, like the devkit's ``argmax``. All detections of all classes are handled in one pass over
(detection, candidate ground truth) pairs, without a Python loop over images or classes.
"""

from __future__ import annotations

import numpy as np

from wsjds.boxes import box_area
from wsjds.evaluation.ground_truth import GroundTruth


def best_overlaps(gt: GroundTruth, image_index: np.ndarray, labels: np.ndarray,
                  boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best same-image, same-class ground truth for each of D detections.

    ``image_index`` (D,) into ``gt.image_ids``, ``labels`` (D,), ``boxes`` (D, 4). Returns
    ``overlap`` (D,) float64, -inf where the image has no box of the class, and ``gt_index`` (D,)
    int64 into the ground-truth arrays, -1 where there is none.
    """
    num_dets = int(labels.shape[0])
    num_classes = max(gt.num_classes, 1)
    gt_key = gt.image_index * num_classes + gt.labels
    gt_order = np.argsort(gt_key, kind="stable")  # stable: annotation order within a group (argmax ties)
    sorted_key = gt_key[gt_order]
    det_key = np.asarray(image_index, dtype=np.int64) * num_classes + np.asarray(labels, dtype=np.int64)
    first = np.searchsorted(sorted_key, det_key, side="left")
    counts = np.searchsorted(sorted_key, det_key, side="right") - first

    # Pairs (detection d, its k-th candidate), grouped by detection in detection order.
    pair_start = np.cumsum(counts) - counts
    pair_det = np.repeat(np.arange(num_dets), counts)
    within = np.arange(int(counts.sum())) - pair_start[pair_det]
    pair_gt = gt_order[first[pair_det] + within]
    iou = paired_iou(np.asarray(boxes, dtype=np.float64)[pair_det], gt.boxes[pair_gt])

    overlap = np.full(num_dets, -np.inf)
    gt_index = np.full(num_dets, -1, dtype=np.int64)
    has = counts > 0
    if not has.any():
        return overlap, gt_index
    overlap[has] = np.maximum.reduceat(iou, pair_start[has])
    at_max = np.flatnonzero(iou == overlap[pair_det])
    first_at_max = at_max[np.r_[True, pair_det[at_max][1:] != pair_det[at_max][:-1]]]
    gt_index[pair_det[first_at_max]] = pair_gt[first_at_max]
    return overlap, gt_index


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of two (N, 4) box arrays -> (N,) float64; 0 where the union is empty.

    The same formula as :func:`wsjds.boxes.box_iou`, for row i of ``a`` against row i of ``b``
    only (``box_iou`` would build the full N x N matrix).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = box_area(a) + box_area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
