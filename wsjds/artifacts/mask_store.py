"""Mask stores on :mod:`wsjds.artifacts.hdf5` and their export as COCO segmentation results.

Artifact ``wsjds.masks`` (results/{ds}/{method}/masks/{split}.{variant}.h5): one file per variant
(:data:`VARIANTS`, made by :mod:`wsjds.stages.masks`), so each is made, rerun, exported and scored on its
own and a method without a segmentation branch still has the box baselines. Per detection row:
``boxes`` (R, 4) float32 (package convention), ``scores`` (R,) float32, ``labels`` (R,) int64
(0-based classes), copied from the input detections so the file is self-contained, and ``rle``
(R,) the COCO RLE ``counts`` (compressed ASCII bytes, :func:`encode_rle`) of the (height, width)
mask, the image size being the file's index. ``parameters`` holds the variant and how the masks
were made.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from wsjds.boxes import xyxy_to_xywh
from wsjds.errors import ArtifactError
from wsjds.artifacts.detections import check_image_detections
from wsjds.artifacts.hdf5 import FieldSpec, Header, RaggedStore, RaggedWriter, TypedWriter, VLEN_BYTES
from wsjds.io import atomic_path

log = logging.getLogger(__name__)

MASKS_FORMAT = "wsjds.masks"
MASKS_VERSION = 1
MASK_FIELDS: Mapping[str, FieldSpec] = {
    "boxes": FieldSpec(np.float32, (4,)),
    "scores": FieldSpec(np.float32, ()),
    "labels": FieldSpec(np.int64, ()),
    "rle": FieldSpec(VLEN_BYTES, ()),
}


# The variants of the mask stage: from the segmentation branch with and without the CRF, and the
# paper's two box-only baselines (Table 5: BB, ELL).
MODEL_VARIANTS: tuple[str, ...] = ("crf", "nocrf")
BOX_VARIANTS: tuple[str, ...] = ("bb", "ell")
VARIANTS: tuple[str, ...] = MODEL_VARIANTS + BOX_VARIANTS


def encode_rle(mask: np.ndarray) -> bytes:
    """COCO RLE ``counts`` (compressed, ASCII bytes) of an (H, W) bool mask."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be (H, W), got shape {mask.shape}")
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]


def decode_rle(counts: bytes | str, width: int, height: int) -> np.ndarray:
    """Inverse of :func:`encode_rle`: (H, W) bool."""
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return mask_utils.decode({"size": [int(height), int(width)], "counts": counts}).astype(bool)


def rle_object(counts: bytes | str, width: int, height: int) -> dict[str, Any]:
    """The JSON form of a COCO RLE: ``{"size": [H, W], "counts": str}``."""
    text = counts.decode("ascii") if isinstance(counts, bytes) else counts
    return {"size": [int(height), int(width)], "counts": text}


@dataclass(frozen=True)
class ImageMasks:
    """Masks of one image: ``boxes`` (R, 4), ``scores`` (R,), ``labels`` (R,), ``rle`` R RLE counts
    (bytes) of (``height``, ``width``) masks."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    rle: tuple[bytes, ...]
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.rle)

    def mask(self, k: int) -> np.ndarray:
        """Detection ``k``'s mask, (H, W) bool."""
        return decode_rle(self.rle[k], self.width, self.height)

    def rle_objects(self) -> list[dict[str, Any]]:
        """COCO JSON RLEs ``{"size": [H, W], "counts": str}``, one per detection."""
        return [rle_object(counts, self.width, self.height) for counts in self.rle]


class MaskStore(RaggedStore):
    """Read-only masks of one split and variant with O(1) access by image id: ``store[image_id]``."""

    FORMAT, VERSIONS = MASKS_FORMAT, (MASKS_VERSION,)

    def __getitem__(self, image_id: str) -> ImageMasks:
        rows = self._ragged.read(image_id)
        width, height = self.image_size(image_id)
        return ImageMasks(rows["boxes"], rows["scores"], rows["labels"], tuple(bytes(r) for r in rows["rle"]),
                          width, height)

    @property
    def variant(self) -> str:
        return str(self.parameters.get("variant", ""))

    def check_rows(self, image_id: str, rows: Mapping[str, np.ndarray]) -> None:
        if self.variant not in VARIANTS:
            raise ArtifactError(f"mask variant {self.variant!r} is not one of {list(VARIANTS)}", path=self.path)
        check_image_detections(rows["boxes"], rows["scores"], rows["labels"], len(self.classes), image_id, self.path)
        if any(len(bytes(counts)) == 0 for counts in rows["rle"]):
            raise ArtifactError("a mask has an empty RLE string", path=self.path, image_id=image_id)

    def items(self) -> Iterator[tuple[str, ImageMasks]]:
        """``(image_id, masks)`` in file order."""
        for image_id in self.image_ids:
            yield image_id, self[image_id]


class MaskWriter(TypedWriter):
    """Write a mask file atomically: ``with MaskWriter(...) as w: w.append(id, width, height, boxes,
    scores, labels, rle)``. ``parameters`` must contain ``variant``."""

    def __init__(self, path: str | Path, *, dataset: str, split: str, classes: Sequence[str], source: str,
                 parameters: Mapping[str, Any]):
        if parameters.get("variant") not in VARIANTS:
            raise ValueError(f"mask parameters need a variant in {list(VARIANTS)}, got {parameters.get('variant')!r}")
        header = Header(format=MASKS_FORMAT, version=MASKS_VERSION, dataset=dataset, split=split, source=source,
                        parameters=dict(parameters), classes=tuple(classes))
        self._writer = RaggedWriter(path, header, MASK_FIELDS)

    def append(self, image_id: str, width: int, height: int, boxes: np.ndarray, scores: np.ndarray,
               labels: np.ndarray, rle: Sequence[bytes]) -> None:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if len(rle) != boxes.shape[0]:
            raise ArtifactError(f"{len(rle)} masks for {boxes.shape[0]} detections", path=self._writer.path,
                               image_id=image_id)
        self._writer.append(image_id, width, height, boxes=boxes, scores=np.asarray(scores, np.float32).reshape(-1),
                            labels=np.asarray(labels, np.int64).reshape(-1),
                            rle=np.array(list(rle), dtype=object).reshape(-1))


def to_coco_segm_results(store: MaskStore, out: str | Path, category_ids: Sequence[int] | None = None,
                         known_image_ids: Sequence[int] | None = None) -> int:
    """Write the store as a COCO results JSON list
    ``[{image_id, category_id, bbox: [x, y, w, h], score, segmentation: {size, counts}}]``.

    With ``category_ids`` (the annotation file's category ids, ascending, one per class) the file is
    standard COCO: integer image ids (the package ids' decimal value, checked against
    ``known_image_ids`` when given) and COCO category ids, ready for ``COCO.loadRes``. Without it,
    the package's form (string image ids, 0-based classes). ``bbox`` is the detection's box.
    Returns the number of entries written.
    """
    if category_ids is not None and len(category_ids) != len(store.classes):
        raise ValueError(f"{len(category_ids)} category ids given for {len(store.classes)} classes")
    known = None if known_image_ids is None else {int(i) for i in known_image_ids}
    results: list[dict[str, Any]] = []
    for image_id, masks in store.items():
        if category_ids is None:
            out_id: str | int = image_id
            cats = masks.labels.tolist()
        else:
            out_id = _coco_image_id(image_id, store.path, known)
            cats = [int(category_ids[label]) for label in masks.labels]
        for bbox, score, cat, rle in zip(xyxy_to_xywh(masks.boxes).tolist(), masks.scores.tolist(), cats,
                                         masks.rle_objects()):
            results.append({"image_id": out_id, "category_id": cat, "bbox": bbox, "score": score,
                            "segmentation": rle})
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(results))
    log.info("wrote %d %s masks of %d images to %s", len(results), store.variant, len(store), out)
    return len(results)


def _coco_image_id(image_id: str, path: Path, known: set[int] | None) -> int:
    try:
        value = int(image_id)
    except ValueError:
        raise ArtifactError("COCO results need integer image ids; this id is not a decimal number (export "
                           "without annotations for the package's string ids)", path=path, image_id=image_id) from None
    if known is not None and value not in known:
        raise ArtifactError(f"image id {value} is not in the annotation file", path=path, image_id=image_id)
    return value
