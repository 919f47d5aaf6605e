"""What the top detection of each (image, class) does: the two failure modes WS-JDS is about.

A weakly supervised detector tends to put one box around several instances of a class, or a box on
the discriminative part of an object only (paper §1, Fig. 1). For every (image, class) pair that
CorLoc counts (``authors`` definition: the image has a non-difficult instance of the class), the
class's highest-scoring detection in the image is put in exactly one bin, tried in this order:

* ``correct``: IoU > ``iou_threshold`` with an instance of the class (a CorLoc hit);
* ``merged``: it covers two or more instances: each has at least ``instance_cover`` of its box area
  inside the detection;
* ``part``: at least ``part_inside`` of the detection's own area lies inside one instance's box;
* ``other``: anything else (background, a neighbour, a distractor);
* ``missed``: no detection of the class in the image.

Difficult instances count as instances, as in CorLoc. ``merged`` can only happen where an image has
two or more instances, so its rate is also given over those pairs (``merged_of_multi_instance``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from wsjds.evaluation.detections_io import FlatDetections
from wsjds.evaluation.ground_truth import GroundTruth
from wsjds.evaluation.matching import paired_iou
from wsjds.evaluation.result import MetricResult

OUTCOMES: tuple[str, ...] = ("correct", "merged", "part", "other", "missed")


def evaluate_failure_modes(gt: GroundTruth, dets: FlatDetections, iou_threshold: float, instance_cover: float,
                           part_inside: float) -> MetricResult:
    """Outcome fractions of the top detection per counted (image, class); ``mean`` is the overall
    ``correct`` fraction (equal to CorLoc pooled over classes), ``per_class`` the per-class one."""
    for name, value in (("iou_threshold", iou_threshold), ("instance_cover", instance_cover),
                        ("part_inside", part_inside)):
        if not 0 < value <= 1:
            raise ValueError(f"failure modes: {name} must be in (0, 1], got {value}")
    if dets.image_ids != gt.image_ids:
        raise ValueError("detections and ground truth index different image lists")
    top = _top_detections(dets, gt.num_classes)
    counts = {name: Counter() for name in gt.classes}
    multi = Counter()
    counted_pairs = sorted({(int(i), int(c)) for i, c in zip(gt.image_index[~gt.difficult], gt.labels[~gt.difficult])})
    for image, label in counted_pairs:
        instances = gt.boxes[(gt.image_index == image) & (gt.labels == label)].astype(np.float64)
        box = top.get((image, label))
        outcome = "missed" if box is None else classify(box, instances, iou_threshold, instance_cover, part_inside)
        counts[gt.classes[label]][outcome] += 1
        if len(instances) >= 2:
            multi[outcome] += 1
    total = sum(counts.values(), Counter())
    pairs = sum(total.values())
    per_class = {name: (c["correct"] / sum(c.values()) if c else None) for name, c in counts.items()}
    details = {
        "pairs": pairs,
        "fractions": {o: (total[o] / pairs if pairs else None) for o in OUTCOMES},
        "counts": {o: total[o] for o in OUTCOMES},
        "per_class_counts": {name: {o: c[o] for o in OUTCOMES} for name, c in counts.items()},
        "multi_instance_pairs": sum(multi.values()),
        "merged_of_multi_instance": (multi["merged"] / sum(multi.values())) if multi else None,
        "iou_threshold": iou_threshold, "instance_cover": instance_cover, "part_inside": part_inside,
    }
    return MetricResult("failure_modes", per_class, details["fractions"]["correct"], details)


def classify(box: np.ndarray, instances: np.ndarray, iou_threshold: float, instance_cover: float,
             part_inside: float) -> str:
    """The outcome of one detection ``box`` (4,) against its class's ``instances`` (N, 4) in the image."""
    box = np.asarray(box, np.float64)
    iou = paired_iou(np.repeat(box[None], len(instances), 0), instances)
    if (iou > iou_threshold).any():
        return "correct"
    inter = _intersection(box, instances)
    instance_area = _area(instances)
    covered = inter >= instance_cover * np.maximum(instance_area, 1e-12)
    if covered.sum() >= 2:
        return "merged"
    if (inter >= part_inside * max(_area(box[None])[0], 1e-12)).any():
        return "part"
    return "other"


def _top_detections(dets: FlatDetections, num_classes: int) -> dict[tuple[int, int], np.ndarray]:
    """(image index, class) -> box of the highest-scoring detection (ties: the first in input order)."""
    by_score = np.argsort(-dets.scores, kind="stable")
    key = dets.image_index[by_score] * num_classes + dets.labels[by_score]
    _, first = np.unique(key, return_index=True)
    return {(int(dets.image_index[d]), int(dets.labels[d])): dets.boxes[d] for d in by_score[first]}


def _intersection(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    w = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    return w * h


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
