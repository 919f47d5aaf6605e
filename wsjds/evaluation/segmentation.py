"""Semantic-segmentation mIoU from a confusion matrix (VOC segmentation splits).

Labels: 0 = background, class k (0-based) = k + 1, 255 = void. Void ground-truth pixels are
ignored; every other pixel adds one count at (ground-truth label, predicted label). IoU of label
l = TP / (TP + FP + FN); a label absent from both ground truth and prediction has no defined IoU
(None, left out of the mean).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from wsjds.errors import DatasetError
from wsjds.data.images import read_label_map
from wsjds.data.voc import VOID_LABEL, VOCDataset
from wsjds.evaluation.result import MetricResult, mean_of_defined

log = logging.getLogger(__name__)

BACKGROUND_NAME = "background"


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_labels: int, void: int = VOID_LABEL,
                     image_id: str | None = None) -> np.ndarray:
    """(L, L) int64 counts, rows = ground truth, columns = prediction, for same-shape label maps.

    ``gt`` values must be in [0, L) or ``void``; ``pred`` values in [0, L).
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise DatasetError(f"prediction is {pred.shape} but the ground truth is {gt.shape}", image_id=image_id)
    valid = gt != void
    g = gt[valid].astype(np.int64)
    p = pred[valid].astype(np.int64)
    if g.size and (g.min() < 0 or g.max() >= num_labels):
        raise DatasetError(f"ground-truth labels outside [0, {num_labels}) and != {void}: "
                           f"{sorted(set(np.unique(g).tolist()) - set(range(num_labels)))}", image_id=image_id)
    if p.size and (p.min() < 0 or p.max() >= num_labels):
        raise DatasetError(f"predicted labels outside [0, {num_labels}): "
                           f"{sorted(set(np.unique(p).tolist()) - set(range(num_labels)))}", image_id=image_id)
    return np.bincount(g * num_labels + p, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def miou_from_confusion(confusion: np.ndarray, classes: Sequence[str]) -> MetricResult:
    """Per-label IoU (``background`` first, then ``classes``) and their mean, from an (L, L) matrix."""
    confusion = np.asarray(confusion, dtype=np.int64)
    names = (BACKGROUND_NAME, *classes)
    if confusion.shape != (len(names), len(names)):
        raise ValueError(f"confusion matrix is {confusion.shape}, expected {(len(names), len(names))}")
    tp = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - tp
    per_class = {name: (float(tp[i] / union[i]) if union[i] else None) for i, name in enumerate(names)}
    total = int(confusion.sum())
    details = {
        "pixel_accuracy": float(tp.sum() / total) if total else None,
        "num_pixels": total,
        "confusion": confusion.tolist(),
    }
    return MetricResult("miou", per_class, mean_of_defined(list(per_class.values())), details)


def evaluate_segmentation(ids: Iterable[str], read_gt: Callable[[str], np.ndarray],
                          read_pred: Callable[[str], np.ndarray], classes: Sequence[str]) -> MetricResult:
    """Accumulate the confusion matrix over ``ids`` and return the mIoU result."""
    num_labels = len(classes) + 1
    confusion = np.zeros((num_labels, num_labels), dtype=np.int64)
    count = 0
    for image_id in ids:
        confusion += confusion_matrix(read_gt(image_id), read_pred(image_id), num_labels, image_id=image_id)
        count += 1
    result = miou_from_confusion(confusion, classes)
    return MetricResult(result.metric, result.per_class, result.mean, {"num_images": count, **result.details})


def evaluate_voc_segmentation(root: str | Path, split: str, classes: Sequence[str],
                              predictions: str | Path) -> MetricResult:
    """mIoU of label PNGs ``{predictions}/{id}.png`` over ``ImageSets/Segmentation/{split}.txt``."""
    dataset = VOCDataset(root, split, tuple(classes))
    predictions = Path(predictions)
    ids = dataset.segmentation_ids()

    def read_pred(image_id: str) -> np.ndarray:
        return read_label_map(predictions / f"{image_id}.png", image_id,
                              expected_size=dataset.image_size(image_id))

    log.info("mIoU over %d images of %s/%s, predictions from %s", len(ids), root, split, predictions)
    return evaluate_segmentation(ids, dataset.read_segmentation_class, read_pred, dataset.classes)
