"""CorLoc: the fraction of images of a class whose top-scoring detection of that class localises an instance.

Two definitions are in use (lessons-from-peers §1.8); both take, per class and image, the
highest-scoring detection of the class (ties: the first in input order) and call it a hit when its
IoU with any ground-truth box of the class, difficult boxes included, is above the threshold
(strictly; 0.5 as in the authors' ``voc_eval_corloc``). Images with no detection are misses.

* ``authors`` (default; WS-JDS / DRN, reference §6.3): the images counted are those with at least
  one non-difficult instance of the class; images whose instances are all difficult are skipped.
* ``pcl`` (PCL / wetectron): every image with any instance of the class counts, difficult or not.

CorLoc is a training-set measure: it is computed on trainval (or train and val separately).
"""

from __future__ import annotations

import logging

import numpy as np

from wsjds.evaluation.detections_io import FlatDetections
from wsjds.evaluation.ground_truth import GroundTruth
from wsjds.evaluation.matching import best_overlaps
from wsjds.evaluation.result import MetricResult, mean_of_defined

log = logging.getLogger(__name__)

CORLOC_DEFINITIONS: tuple[str, ...] = ("authors", "pcl")
DEFAULT_CORLOC_DEFINITION = "authors"
# The authors' voc_eval_corloc: a hit needs IoU > 0.5 (strict).
CORLOC_IOU_THRESHOLD = 0.5


def evaluate_corloc(gt: GroundTruth, dets: FlatDetections, definition: str = DEFAULT_CORLOC_DEFINITION,
                    iou_threshold: float = CORLOC_IOU_THRESHOLD) -> MetricResult:
    """Per-class CorLoc and its mean; a class with no counted image is None and left out of the mean."""
    if definition not in CORLOC_DEFINITIONS:
        raise ValueError(f"unknown CorLoc definition {definition!r}; expected one of {list(CORLOC_DEFINITIONS)}")
    if dets.image_ids != gt.image_ids:
        raise ValueError("detections and ground truth index different image lists")
    num_images, num_classes = len(gt.image_ids), gt.num_classes

    # counted[i, c]: image i enters class c's denominator.
    counted = np.zeros((num_images, num_classes), dtype=bool)
    keep = ~gt.difficult if definition == "authors" else np.ones_like(gt.difficult)
    counted[gt.image_index[keep], gt.labels[keep]] = True

    top = top_detections(dets, num_classes)
    overlap, _ = best_overlaps(gt, dets.image_index[top], dets.labels[top], dets.boxes[top])
    hit = np.zeros((num_images, num_classes), dtype=bool)
    hit[dets.image_index[top], dets.labels[top]] = overlap > iou_threshold

    images = counted.sum(axis=0)
    hits = (hit & counted).sum(axis=0)
    per_class = {name: (float(hits[c] / images[c]) if images[c] else None) for c, name in enumerate(gt.classes)}
    undefined = [name for name, value in per_class.items() if value is None]
    if undefined:
        log.warning("no counted image for %s: CorLoc undefined, left out of the mean", undefined)
    details = {
        "definition": definition, "iou_threshold": float(iou_threshold), "num_images": num_images,
        "num_detections": len(dets),
        "images_per_class": {name: int(images[c]) for c, name in enumerate(gt.classes)},
        "hits_per_class": {name: int(hits[c]) for c, name in enumerate(gt.classes)},
        "classes_without_ground_truth": undefined,
    }
    return MetricResult("corloc", per_class, mean_of_defined(list(per_class.values())), details)


def top_detections(dets: FlatDetections, num_classes: int) -> np.ndarray:
    """Indices into ``dets`` of the highest-scoring detection of each (image, class) that has one;
    ties go to the first in input order (a stable sort by score, then the first per key)."""
    by_score = np.argsort(-dets.scores, kind="stable")
    key = dets.image_index[by_score] * num_classes + dets.labels[by_score]
    _, first = np.unique(key, return_index=True)
    return by_score[first]
