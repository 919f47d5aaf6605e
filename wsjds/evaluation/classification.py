"""Image-level classification AP from saved detections: what can be measured without boxes.

An image's score for a class is its best detection score of that class (0 without one): for the
WSOD detector that is the top proposal's x_rc, the quantity its image score sum is dominated by
once trained. Per class, images are ranked by that score against the image-level labels, and AP is
the area under the precision envelope (:func:`wsjds.evaluation.voc.average_precision`, VOC2010+).
Ties keep split order (a stable sort), so the result is a pure function of the files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wsjds.evaluation.detections_io import FlatDetections
from wsjds.evaluation.result import MetricResult, mean_of_defined
from wsjds.evaluation.voc import average_precision


def image_scores(dets: FlatDetections, num_classes: int) -> np.ndarray:
    """(N, C) float64: per image and class the best detection score, 0 where there is none."""
    scores = np.zeros((len(dets.image_ids), num_classes), np.float64)
    np.maximum.at(scores, (dets.image_index, dets.labels), dets.scores)
    return scores


def evaluate_classification(labels: np.ndarray, scores: np.ndarray, classes: Sequence[str]) -> MetricResult:
    """AP per class of ``scores`` (N, C) against ``labels`` (N, C) in {0, 1}; None for a class with
    no positive image."""
    labels = np.asarray(labels, bool)
    if labels.shape != scores.shape or labels.shape[1] != len(classes):
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must both be (images, {len(classes)})")
    per_class: dict[str, float | None] = {}
    for c, name in enumerate(classes):
        positives = int(labels[:, c].sum())
        if positives == 0:
            per_class[name] = None
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        hits = labels[order, c]
        tp = np.cumsum(hits)
        precision = tp / np.arange(1, len(hits) + 1)
        per_class[name] = average_precision(tp / positives, precision, use_07_metric=False)
    return MetricResult("cls_map", per_class, mean_of_defined(list(per_class.values())),
                        {"num_images": int(labels.shape[0]), "image_score": "best detection score of the class",
                         "positives": {name: int(labels[:, c].sum()) for c, name in enumerate(classes)}})
