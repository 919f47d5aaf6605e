"""The one place that maps class names to 0-based indices (no background column).

Every dataset's class list lives here; the Fast R-CNN stage adds a background class internally
and converts back at its own boundary.
"""

from __future__ import annotations

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

# The embedded synthetic dataset (wsjds.data.synthetic). The first three are identified by their
# whole silhouette; the last three share one generic body and differ only by a small marker
# ("head"), which is what makes weakly supervised detectors box only the part.
SYNTH_CLASSES: tuple[str, ...] = ("ring", "star", "cross", "beetle", "fish", "kite")

_BY_KIND: dict[str, tuple[str, ...]] = {"voc": VOC_CLASSES, "synthetic": SYNTH_CLASSES}


def classes_for(kind: str) -> tuple[str, ...]:
    """Class list of a dataset kind (``voc`` or ``synthetic``; COCO reads its own from the JSON)."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {sorted(_BY_KIND)}") from None


def class_index(classes: tuple[str, ...]) -> dict[str, int]:
    """Name -> 0-based index for a class list."""
    return {name: i for i, name in enumerate(classes)}
