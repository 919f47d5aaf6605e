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

from wsjds.boxes import box_area, box_intersection, box_iou
from wsjds.evaluation.corloc import top_detections
from wsjds.evaluation.detections_io import FlatDetections
from wsjds.evaluation.ground_truth import GroundTruth
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
    top = {(int(dets.image_index[d]), int(dets.labels[d])): dets.boxes[d]
           for d in top_detections(dets, gt.num_classes)}
    instances_of: dict[tuple[int, int], list[int]] = {}
    for g, (image, label) in enumerate(zip(gt.image_index.tolist(), gt.labels.tolist())):
        instances_of.setdefault((image, label), []).append(g)
    counts = {name: Counter() for name in gt.classes}
    multi = Counter()
    counted_pairs = sorted({(int(i), int(c)) for i, c in zip(gt.image_index[~gt.difficult], gt.labels[~gt.difficult])})
    for image, label in counted_pairs:
        instances = gt.boxes[instances_of[(image, label)]]
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
    box = np.asarray(box, np.float64).reshape(1, 4)
    if (box_iou(box, instances)[0] > iou_threshold).any():
        return "correct"
    inter = box_intersection(box, instances)[0]
    covered = inter >= instance_cover * np.maximum(box_area(instances), 1e-12)
    if covered.sum() >= 2:
        return "merged"
    if (inter >= part_inside * max(float(box_area(box)[0]), 1e-12)).any():
        return "part"
    return "other"
