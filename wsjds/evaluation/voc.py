"""PASCAL VOC detection AP with the devkit's semantics, vectorised over all classes and images.

Per class, detections are ranked by descending score with a **stable** sort, so equal scores keep
input order (the devkit's ``argsort`` is not stable; with distinct scores the two agree). Each
detection takes the ground truth of its image and class with the largest IoU (difficult boxes
included). If that IoU is above the threshold (strictly, devkit: 0.5): a difficult box makes the
detection neither TP nor FP; an unmatched box makes it a TP and is marked; an already matched box
makes it a FP (duplicate). Otherwise it is a FP. Recall is over the non-difficult boxes (npos).

AP is the 11-point interpolated AP for VOC2007 (``use_07_metric``) and the area under the
monotone precision envelope for VOC2010 and later. A class with no non-difficult ground truth has
no defined AP (the devkit would divide by zero): it is reported as None and left out of the mean.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from wsjds.evaluation.detections_io import FlatDetections
from wsjds.evaluation.ground_truth import GroundTruth
from wsjds.evaluation.matching import best_overlaps
from wsjds.evaluation.result import MetricResult, mean_of_defined

log = logging.getLogger(__name__)

# The devkit's overlap criterion: a detection matches when IoU > 0.5 (strict).
DEVKIT_IOU_THRESHOLD = 0.5
# 11-point recall thresholds exactly as the Python VOC evaluator used by the authors' Detectron and
# py-faster-rcnn (np.arange(0.0, 1.1, 0.1)): 0.3, 0.6 and 0.7 come out one ulp above the decimal,
# so the AP matches published numbers bit for bit.
VOC07_RECALL_THRESHOLDS = np.arange(0.0, 1.1, 0.1)


def evaluate_voc_map(gt: GroundTruth, dets: FlatDetections, use_07_metric: bool,
                     iou_threshold: float = DEVKIT_IOU_THRESHOLD) -> MetricResult:
    """Per-class AP and mAP of ``dets`` against ``gt`` (see module docstring for the rules)."""
    curves = precision_recall(gt, dets, iou_threshold)
    per_class: dict[str, float | None] = {
        name: None if curve.num_positives == 0 else float(average_precision(curve.recall, curve.precision,
                                                                             use_07_metric))
        for name, curve in curves.items()}
    undefined = [name for name, ap in per_class.items() if ap is None]
    if undefined:
        log.warning("no non-difficult ground truth for %s: AP undefined, left out of the mean", undefined)
    details = {
        "use_07_metric": bool(use_07_metric), "iou_threshold": float(iou_threshold),
        "num_images": len(gt.image_ids), "num_detections": len(dets),
        "num_positives": {name: curve.num_positives for name, curve in curves.items()},
        "num_detections_per_class": {name: int(curve.recall.size) for name, curve in curves.items()},
        "classes_without_ground_truth": undefined,
    }
    return MetricResult("map", per_class, mean_of_defined(list(per_class.values())), details)


@dataclass(frozen=True)
class PrecisionRecall:
    """One class's ranked detections as a curve: ``recall`` and ``precision`` (D,) float64 after each
    detection in descending score order (the arrays AP is computed from), ``scores`` (D,) the ranked
    scores, ``num_positives`` the non-difficult ground-truth boxes. With no positives, recall is 0."""

    recall: np.ndarray
    precision: np.ndarray
    scores: np.ndarray
    num_positives: int


def precision_recall(gt: GroundTruth, dets: FlatDetections,
                     iou_threshold: float = DEVKIT_IOU_THRESHOLD) -> dict[str, PrecisionRecall]:
    """Per-class cumulative precision and recall of ``dets`` against ``gt``, devkit matching
    (:func:`match_detections`). Detections on difficult boxes count neither way, so they add a
    point at the previous precision and recall. Keys follow ``gt.classes``."""
    _check_aligned(gt, dets)
    tp, fp, order = match_detections(gt, dets, iou_threshold)
    sorted_labels = dets.labels[order]
    sorted_scores = dets.scores[order]
    npos = np.bincount(gt.labels[~gt.difficult], minlength=gt.num_classes)
    curves: dict[str, PrecisionRecall] = {}
    for c, name in enumerate(gt.classes):
        lo, hi = np.searchsorted(sorted_labels, [c, c + 1])
        tp_c = np.cumsum(tp[lo:hi], dtype=np.float64)
        fp_c = np.cumsum(fp[lo:hi], dtype=np.float64)
        recall = tp_c / float(npos[c]) if npos[c] else np.zeros_like(tp_c)
        precision = tp_c / np.maximum(tp_c + fp_c, np.finfo(np.float64).eps)
        curves[name] = PrecisionRecall(recall, precision, np.asarray(sorted_scores[lo:hi], np.float64), int(npos[c]))
    return curves


def match_detections(gt: GroundTruth, dets: FlatDetections,
                     iou_threshold: float = DEVKIT_IOU_THRESHOLD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Devkit TP/FP flags of every detection, in evaluation order.

    Returns ``tp`` (D,) bool, ``fp`` (D,) bool and ``order`` (D,) int64: ``tp[k]`` / ``fp[k]`` belong
    to detection ``order[k]``; ``order`` sorts by class, then descending score, ties in input order.
    A detection on a difficult box has both flags False.
    """
    overlap, gt_index = best_overlaps(gt, dets.image_index, dets.labels, dets.boxes)
    by_score = np.argsort(-dets.scores, kind="stable")
    order = by_score[np.argsort(dets.labels[by_score], kind="stable")]
    matched = overlap[order] > iou_threshold
    hit_gt = gt_index[order]
    ignored = matched & gt.difficult[np.where(matched, hit_gt, 0)] if len(gt.labels) else np.zeros_like(matched)
    candidate = np.flatnonzero(matched & ~ignored)
    # A ground-truth box is matched by the first (highest-ranked) candidate that hits it; later ones are
    # duplicates. Boxes belong to one class, so the first occurrence in class-then-score order is right.
    _, first = np.unique(hit_gt[candidate], return_index=True)
    tp = np.zeros(len(order), dtype=bool)
    tp[candidate[first]] = True
    fp = ~tp & ~ignored
    return tp, fp, order


def average_precision(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool) -> float:
    """AP of one class from its cumulative recall and precision (in ranked order).

    ``use_07_metric``: mean over t in :data:`VOC07_RECALL_THRESHOLDS` of the highest precision at
    recall >= t (0 if none). Otherwise the area under the precision envelope (precision made
    non-increasing in recall), summed where recall changes.
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if use_07_metric:
        if recall.size == 0:
            return 0.0
        # best[i] = max(precision[i:]); the first index with recall >= t gives the max over recall >= t
        best = np.maximum.accumulate(precision[::-1])[::-1]
        start = np.searchsorted(np.maximum.accumulate(recall), VOC07_RECALL_THRESHOLDS, side="left")
        reached = start < recall.size
        return float(np.sum(best[start[reached]]) / VOC07_RECALL_THRESHOLDS.size)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    change = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[change + 1] - mrec[change]) * mpre[change + 1]))


def _check_aligned(gt: GroundTruth, dets: FlatDetections) -> None:
    if dets.image_ids != gt.image_ids:
        raise ValueError("detections and ground truth index different image lists")
