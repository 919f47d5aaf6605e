"""COCO instances JSON reader (through pycocotools): image-level labels, boxes, and masks.

Image ids become decimal strings; class indices are 0-based in the order of ascending category
id. Crowd annotations are kept but flagged ``difficult`` (so they never make an image label and,
as in the devkit semantics, count neither way in box evaluation). Masks are for evaluation only.
An optional ``difficult`` field per annotation (the synthetic dataset writes one) is honoured.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from wsjds.boxes import xywh_to_xyxy
from wsjds.errors import DatasetError
from wsjds.data.images import read_rgb
from wsjds.data.voc import Annotation


class COCODataset:
    """One COCO-format annotation file and (optionally) the folder holding its images."""

    def __init__(self, annotation_file: str | Path, image_dir: str | Path | None = None,
                 include_difficult_labels: bool = False):
        self.annotation_file = Path(annotation_file)
        self.image_dir = None if image_dir is None else Path(image_dir)
        self.include_difficult_labels = include_difficult_labels
        self.coco = _load(self.annotation_file)
        category_ids = sorted(self.coco.getCatIds())
        self._category_index = {cat: i for i, cat in enumerate(category_ids)}
        self.classes: tuple[str, ...] = tuple(self.coco.cats[c]["name"] for c in category_ids)
        self.ids: tuple[str, ...] = tuple(str(i) for i in sorted(self.coco.getImgIds()))
        self._annotations: dict[str, Annotation] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def category_id(self, label: int) -> int:
        """0-based class index -> the file's COCO category id."""
        return sorted(self._category_index)[label]

    def image_info(self, image_id: str) -> dict:
        try:
            return self.coco.imgs[int(image_id)]
        except (KeyError, ValueError):
            raise DatasetError("image id not in the annotation file", path=self.annotation_file,
                               image_id=image_id) from None

    def image_size(self, image_id: str) -> tuple[int, int]:
        info = self.image_info(image_id)
        return int(info["width"]), int(info["height"])

    def image_path(self, image_id: str) -> Path:
        if self.image_dir is None:
            raise DatasetError("no image directory was given for this COCO dataset", path=self.annotation_file)
        return self.image_dir / self.image_info(image_id)["file_name"]

    def read_image(self, image_id: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB, checked against the size in the JSON."""
        return read_rgb(self.image_path(image_id), image_id, expected_size=self.image_size(image_id))

    def annotation(self, image_id: str) -> Annotation:
        """Objects of one image in package conventions (cached)."""
        if image_id not in self._annotations:
            self._annotations[image_id] = self._parse(image_id)
        return self._annotations[image_id]

    def annotations(self) -> dict[str, Annotation]:
        return {image_id: self.annotation(image_id) for image_id in self.ids}

    def image_labels(self, image_id: str) -> np.ndarray:
        """(C,) float32 image-level labels for weakly supervised training."""
        return self.annotation(image_id).image_labels(len(self.classes), self.include_difficult_labels)

    def masks(self, image_id: str) -> np.ndarray:
        """(N, H, W) bool instance masks, in the order of :meth:`annotation`'s objects."""
        width, height = self.image_size(image_id)
        anns = self._raw(image_id)
        if not anns:
            return np.zeros((0, height, width), dtype=bool)
        return np.stack([self.coco.annToMask(a).astype(bool) for a in anns])

    def _raw(self, image_id: str) -> list[dict]:
        self.image_info(image_id)
        return self.coco.loadAnns(self.coco.getAnnIds(imgIds=[int(image_id)]))

    def _parse(self, image_id: str) -> Annotation:
        width, height = self.image_size(image_id)
        anns = self._raw(image_id)
        boxes, labels, difficult, truncated = [], [], [], []
        for ann in anns:
            if ann.get("category_id") not in self._category_index:
                raise DatasetError(f"annotation {ann.get('id')} has unknown category id "
                                   f"{ann.get('category_id')!r}", path=self.annotation_file, image_id=image_id)
            box = xywh_to_xyxy(np.asarray(ann.get("bbox", []), dtype=np.float64))[0] if len(ann.get("bbox", [])) == 4 else None
            if box is None or not (box[2] > box[0] and box[3] > box[1]):
                raise DatasetError(f"annotation {ann.get('id')} has bbox {ann.get('bbox')!r}, expected "
                                   "[x, y, w, h] with w > 0 and h > 0", path=self.annotation_file, image_id=image_id)
            boxes.append(box)
            labels.append(self._category_index[ann["category_id"]])
            difficult.append(bool(ann.get("iscrowd", 0)) or bool(ann.get("difficult", 0)))
            truncated.append(bool(ann.get("truncated", 0)))
        return Annotation(
            image_id=image_id, width=width, height=height,
            boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            labels=np.asarray(labels, dtype=np.int64),
            difficult=np.asarray(difficult, dtype=bool),
            truncated=np.asarray(truncated, dtype=bool),
        )


def _load(path: Path) -> COCO:
    if not path.is_file():
        raise DatasetError("COCO annotation file is missing", path=path)
    try:
        with contextlib.redirect_stdout(io.StringIO()):   # pycocotools prints progress to stdout
            return COCO(str(path))
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"not a valid COCO instances JSON ({type(exc).__name__}: {exc})", path=path) from exc
