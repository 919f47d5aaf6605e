"""Evaluation of saved predictions, independent of the model: VOC AP, CorLoc, COCO AP^b / AP^r, mIoU.

Depends only on the box convention, the dataset readers and the detection store, so it scores
anyone's detections (the package's HDF5, a JSON list, or VOC comp4 files).
"""

from wsjds.evaluation.corloc import CORLOC_DEFINITIONS, DEFAULT_CORLOC_DEFINITION, evaluate_corloc
from wsjds.evaluation.detections_io import FlatDetections, read_detections
from wsjds.evaluation.ground_truth import GroundTruth, ground_truth_from_annotations, load_voc_ground_truth
from wsjds.evaluation.result import MetricResult
from wsjds.evaluation.segmentation import confusion_matrix, evaluate_voc_segmentation, miou_from_confusion
from wsjds.evaluation.voc import (PrecisionRecall, average_precision, evaluate_voc_map, match_detections,
                                  precision_recall)

__all__ = [
    "CORLOC_DEFINITIONS",
    "DEFAULT_CORLOC_DEFINITION",
    "FlatDetections",
    "GroundTruth",
    "MetricResult",
    "PrecisionRecall",
    "average_precision",
    "confusion_matrix",
    "evaluate_corloc",
    "evaluate_voc_map",
    "evaluate_voc_segmentation",
    "ground_truth_from_annotations",
    "load_voc_ground_truth",
    "match_detections",
    "miou_from_confusion",
    "precision_recall",
    "read_detections",
]
