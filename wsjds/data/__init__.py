"""Dataset readers (VOC devkit, COCO), the synthetic dataset generator and summaries."""

from wsjds.data.classes import SYNTH_CLASSES, VOC_CLASSES, class_index, classes_for
from wsjds.data.voc import Annotation, VOCDataset

__all__ = [
    "Annotation",
    "SYNTH_CLASSES",
    "VOCDataset",
    "VOC_CLASSES",
    "class_index",
    "classes_for",
]
