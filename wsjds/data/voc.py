"""PASCAL VOC devkit reader (VOC2007 / 2010 / 2012 layout, and the synthetic dataset, which uses it).

Layout under ``root`` (a ``VOC20XX`` directory)::

    ImageSets/Main/{split}.txt          one image id per line
    ImageSets/Segmentation/{split}.txt  ids that have segmentation PNGs
    Annotations/{id}.xml                boxes (1-based, inclusive), difficult, truncated
    JPEGImages/{id}.jpg
    SegmentationClass/{id}.png          palette index = class index + 1, 0 = background, 255 = void
    SegmentationObject/{id}.png         palette index = instance number, 0 = background, 255 = void

Boxes come out in the package convention (``wsjds.boxes``); class indices are 0-based into
``classes``. Every error names the file and the image id.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsjds.boxes import from_voc_xml
from wsjds.data.classes import VOC_CLASSES, class_index
from wsjds.errors import DatasetError
from wsjds.data.images import check_image_header, read_label_map, read_rgb

VOID_LABEL = 255


@dataclass(frozen=True)
class Annotation:
    """Objects of one image. ``boxes`` (N, 4) float32 in package convention; ``labels`` (N,) int64
    0-based class indices; ``difficult`` and ``truncated`` (N,) bool."""

    image_id: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    truncated: np.ndarray

    def image_labels(self, num_classes: int, include_difficult: bool = False) -> np.ndarray:
        """Image-level labels (C,) float32 in {0, 1}: a class is positive if it has an object,
        counting difficult objects only when ``include_difficult`` (OICR/PCL/WS-JDS use only
        non-difficult ones)."""
        keep = np.ones_like(self.difficult) if include_difficult else ~self.difficult
        labels = np.zeros(num_classes, dtype=np.float32)
        labels[self.labels[keep]] = 1.0
        return labels


class VOCDataset:
    """One split of a VOC-layout dataset. Annotations are parsed once and cached."""

    def __init__(self, root: str | Path, split: str, classes: tuple[str, ...] = VOC_CLASSES,
                 include_difficult_labels: bool = False):
        self.root = Path(root)
        self.split = split
        self.classes = tuple(classes)
        self.include_difficult_labels = include_difficult_labels
        self._class_index = class_index(self.classes)
        self.ids: tuple[str, ...] = read_image_set(self.root, "Main", split)
        self._annotations: dict[str, Annotation] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def annotation_path(self, image_id: str) -> Path:
        return self.root / "Annotations" / f"{image_id}.xml"

    def image_path(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def annotation(self, image_id: str) -> Annotation:
        """Parsed objects of one image (cached)."""
        if image_id not in self._annotations:
            self._annotations[image_id] = parse_annotation(
                self.annotation_path(image_id), image_id, self._class_index)
        return self._annotations[image_id]

    def annotations(self) -> dict[str, Annotation]:
        """Every image of the split, in list order. Fails on the first bad file."""
        return {image_id: self.annotation(image_id) for image_id in self.ids}

    def image_size(self, image_id: str) -> tuple[int, int]:
        """``(width, height)`` from the annotation, without decoding the image."""
        ann = self.annotation(image_id)
        return ann.width, ann.height

    def image_labels(self, image_id: str) -> np.ndarray:
        """(C,) float32 image-level labels for weakly supervised training."""
        return self.annotation(image_id).image_labels(len(self.classes), self.include_difficult_labels)

    def read_image(self, image_id: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB, checked against the annotation's size."""
        ann = self.annotation(image_id)
        return read_rgb(self.image_path(image_id), image_id, expected_size=(ann.width, ann.height))

    def check_image(self, image_id: str) -> None:
        """Without decoding: the image file exists and its header has the annotation's size."""
        ann = self.annotation(image_id)
        check_image_header(self.image_path(image_id), image_id, expected_size=(ann.width, ann.height))

    def segmentation_ids(self) -> tuple[str, ...]:
        """Ids of the split that have segmentation PNGs (ImageSets/Segmentation/{split}.txt)."""
        return read_image_set(self.root, "Segmentation", self.split)

    def read_segmentation_class(self, image_id: str) -> np.ndarray:
        """(H, W) uint8: class index + 1 per pixel, 0 background, 255 void."""
        return self._read_segmentation("SegmentationClass", image_id)

    def read_segmentation_object(self, image_id: str) -> np.ndarray:
        """(H, W) uint8: instance number per pixel (1-based, XML object order), 0 background, 255 void."""
        return self._read_segmentation("SegmentationObject", image_id)

    def _read_segmentation(self, folder: str, image_id: str) -> np.ndarray:
        ann = self.annotation(image_id)
        return read_label_map(self.root / folder / f"{image_id}.png", image_id,
                              expected_size=(ann.width, ann.height))


def read_image_set(root: str | Path, kind: str, split: str) -> tuple[str, ...]:
    """Ids listed in ``ImageSets/{kind}/{split}.txt`` (first token per non-empty line)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError("dataset root does not exist; expected a VOC20XX directory holding "
                           "JPEGImages/, Annotations/ and ImageSets/", path=root)
    path = root / "ImageSets" / kind / f"{split}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.txt") if "_" not in p.stem)
        raise DatasetError(f"split {split!r} has no image list; lists found: {available}", path=path)
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    duplicates = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if duplicates:
        raise DatasetError(f"image ids listed more than once: {duplicates[:10]}", path=path)
    if not ids:
        raise DatasetError("image list is empty", path=path)
    return tuple(ids)


def parse_annotation(path: Path, image_id: str, class_to_index: dict[str, int]) -> Annotation:
    """Parse one VOC XML file into an :class:`Annotation` (boxes converted to package convention)."""
    if not path.is_file():
        raise DatasetError("annotation file is missing (the id is listed in ImageSets but not on disk)",
                           path=path, image_id=image_id)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DatasetError(f"malformed or truncated XML ({exc})", path=path, image_id=image_id) from exc

    width = _int_field(root, "size/width", path, image_id)
    height = _int_field(root, "size/height", path, image_id)
    if width <= 0 or height <= 0:
        raise DatasetError(f"image size must be positive, found {width}x{height}", path=path, image_id=image_id)

    boxes, labels, difficult, truncated = [], [], [], []
    for k, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        if name not in class_to_index:
            raise DatasetError(f"object {k} has unknown class name {name!r}; known classes: "
                               f"{', '.join(class_to_index)}", path=path, image_id=image_id)
        coords = [_float_field(obj, f"bndbox/{tag}", path, image_id) for tag in ("xmin", "ymin", "xmax", "ymax")]
        box = from_voc_xml(*coords)
        if not (0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height):
            raise DatasetError(f"object {k} ({name}) has box xmin,ymin,xmax,ymax={coords}, expected "
                               f"1 <= xmin <= xmax <= {width} and 1 <= ymin <= ymax <= {height}",
                               path=path, image_id=image_id)
        boxes.append(box)
        labels.append(class_to_index[name])
        difficult.append(_flag(obj, "difficult", path, image_id))
        truncated.append(_flag(obj, "truncated", path, image_id))

    return Annotation(
        image_id=image_id,
        width=width,
        height=height,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int64),
        difficult=np.asarray(difficult, dtype=bool),
        truncated=np.asarray(truncated, dtype=bool),
    )


def _float_field(node: ET.Element, tag: str, path: Path, image_id: str) -> float:
    text = node.findtext(tag)
    try:
        return float(text)  # VOC2012 has a few fractional coordinates
    except (TypeError, ValueError):
        raise DatasetError(f"expected a number in <{tag}>, found {text!r}", path=path, image_id=image_id) from None


def _int_field(node: ET.Element, tag: str, path: Path, image_id: str) -> int:
    value = _float_field(node, tag, path, image_id)
    if value != int(value):
        raise DatasetError(f"expected an integer in <{tag}>, found {value}", path=path, image_id=image_id)
    return int(value)


def _flag(node: ET.Element, tag: str, path: Path, image_id: str) -> bool:
    text = node.findtext(tag)
    if text is None:
        return False  # the devkit treats a missing flag as 0
    if text.strip() not in ("0", "1"):
        raise DatasetError(f"expected 0 or 1 in <{tag}>, found {text!r}", path=path, image_id=image_id)
    return text.strip() == "1"
