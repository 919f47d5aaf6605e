"""Detection stores on top of :mod:`wsjds.artifacts.hdf5`, and their exports to standard tools.

Two artifacts:

* ``wsjds.detections`` (results/{ds}/{method}/detections/{split}.h5): per image the final
  detections after NMS and the per-image cap. Fields ``boxes`` (R, 4) float32 in the package box
  convention, ``scores`` (R,) float32, ``labels`` (R,) int64 (0-based class indices into the
  file's ``classes`` attribute).
* ``wsjds.proposal_scores`` (optional companion, e.g. {split}.proposal_scores.h5): the raw
  per-proposal class scores before NMS, kept for pseudo-GT mining. Fields ``boxes`` (K, 4) float32
  and ``scores`` (K, C) float32, gzip-compressed. It is a separate file because a ragged file
  shares one row index between its fields, and K proposals != R detections.

Exports: :func:`to_coco_results` (a COCO results JSON list) and :func:`to_voc_comp4` (the VOC
devkit's ``comp4_det_{split}_{class}.txt`` files), so results feed pycocotools and the VOC server.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from wsjds.boxes import to_voc_xml, xyxy_to_xywh
from wsjds.errors import ArtifactError
from wsjds.artifacts.hdf5 import FieldSpec, Header, RaggedStore, RaggedWriter, TypedWriter
from wsjds.io import atomic_path

log = logging.getLogger(__name__)

DETECTIONS_FORMAT = "wsjds.detections"
DETECTIONS_VERSION = 1
DETECTION_FIELDS: Mapping[str, FieldSpec] = {
    "boxes": FieldSpec(np.float32, (4,)),
    "scores": FieldSpec(np.float32, ()),
    "labels": FieldSpec(np.int64, ()),
}

PROPOSAL_SCORES_FORMAT = "wsjds.proposal_scores"
PROPOSAL_SCORES_VERSION = 1
# h5py's gzip at its default level: the per-proposal score matrices are the bulk of the file.
PROPOSAL_SCORES_COMPRESSION = "gzip"

# Decimal places in comp4 files: scores keep 6 (ranking ties stay ties), coordinates 2 (a hundredth
# of a pixel; the devkit itself reads integers).
COMP4_SCORE_DECIMALS = 6
COMP4_BOX_DECIMALS = 2


@dataclass(frozen=True)
class ImageDetections:
    """Detections of one image: ``boxes`` (R, 4) float32, ``scores`` (R,) float32, ``labels`` (R,) int64."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


class DetectionStore(RaggedStore):
    """Read-only detections of one split with O(1) access by image id: ``store[image_id]``."""

    FORMAT, VERSIONS = DETECTIONS_FORMAT, (DETECTIONS_VERSION,)

    def __getitem__(self, image_id: str) -> ImageDetections:
        rows = self._ragged.read(image_id)
        return ImageDetections(rows["boxes"], rows["scores"], rows["labels"])

    def check_rows(self, image_id: str, rows: Mapping[str, np.ndarray]) -> None:
        check_image_detections(rows["boxes"], rows["scores"], rows["labels"], len(self.classes), image_id, self.path)

    def items(self) -> Iterator[tuple[str, ImageDetections]]:
        """``(image_id, detections)`` in file order."""
        for image_id in self.image_ids:
            yield image_id, self[image_id]


class DetectionWriter(TypedWriter):
    """Write a detections file atomically:
    ``with DetectionWriter(...) as w: w.append(image_id, width, height, boxes, scores, labels)``.

    Each image is checked: finite boxes with x2 >= x1 and y2 >= y1, finite scores, labels in
    ``[0, len(classes))``.
    """

    def __init__(self, path: str | Path, *, dataset: str, split: str, classes: Sequence[str], source: str,
                 parameters: Mapping[str, Any]):
        if not classes:
            raise ValueError("a detections file needs the dataset's class list")
        header = Header(format=DETECTIONS_FORMAT, version=DETECTIONS_VERSION, dataset=dataset, split=split,
                        source=source, parameters=dict(parameters), classes=tuple(classes))
        self._num_classes = len(classes)
        self._writer = RaggedWriter(path, header, DETECTION_FIELDS)

    def append(self, image_id: str, width: int, height: int, boxes: np.ndarray, scores: np.ndarray,
               labels: np.ndarray) -> None:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        labels = np.asarray(labels).reshape(-1)
        check_image_detections(boxes, scores, labels, self._num_classes, image_id, self._writer.path)
        self._writer.append(image_id, width, height, boxes=boxes, scores=scores, labels=labels.astype(np.int64))


class ProposalScoresStore(RaggedStore):
    """Raw per-proposal class scores of one split: ``boxes, scores = store[image_id]``, (K, 4) and (K, C)."""

    FORMAT, VERSIONS = PROPOSAL_SCORES_FORMAT, (PROPOSAL_SCORES_VERSION,)

    def __getitem__(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        rows = self._ragged.read(image_id)
        return rows["boxes"], rows["scores"]


class ProposalScoresWriter(TypedWriter):
    """Write raw per-proposal class scores (gzip-compressed): ``w.append(id, w, h, boxes (K, 4), scores (K, C))``."""

    def __init__(self, path: str | Path, *, dataset: str, split: str, classes: Sequence[str], source: str,
                 parameters: Mapping[str, Any]):
        if not classes:
            raise ValueError("a proposal scores file needs the dataset's class list")
        header = Header(format=PROPOSAL_SCORES_FORMAT, version=PROPOSAL_SCORES_VERSION, dataset=dataset,
                        split=split, source=source, parameters=dict(parameters), classes=tuple(classes))
        fields = {"boxes": FieldSpec(np.float32, (4,)), "scores": FieldSpec(np.float32, (len(classes),))}
        self._num_classes = len(classes)
        self._writer = RaggedWriter(path, header, fields, compression=PROPOSAL_SCORES_COMPRESSION)

    def append(self, image_id: str, width: int, height: int, boxes: np.ndarray, scores: np.ndarray) -> None:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float32).reshape(boxes.shape[0], self._num_classes)
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise ArtifactError("proposal boxes and scores must be finite", path=self._writer.path,
                               image_id=image_id)
        self._writer.append(image_id, width, height, boxes=boxes, scores=scores)


def to_coco_results(store: DetectionStore, out: str | Path,
                    category_ids: Sequence[int] | None = None) -> int:
    """Write the store as a COCO results JSON list ``[{image_id, category_id, bbox: [x, y, w, h], score}]``.

    With ``category_ids`` (the annotation file's category ids in ascending order, one per class)
    the file is standard COCO: integer image ids and COCO category ids, ready for
    ``COCO.loadRes``. Without it, the package's form: string image ids and 0-based class indices
    (what ``wsjds evaluate voc`` reads). Returns the number of detections written.
    """
    if category_ids is not None and len(category_ids) != len(store.classes):
        raise ValueError(f"{len(category_ids)} category ids given for {len(store.classes)} classes")
    results: list[dict[str, Any]] = []
    for image_id, dets in store.items():
        if category_ids is None:
            out_id: str | int = image_id
            cats = dets.labels.tolist()
        else:
            out_id = _numeric_image_id(image_id, store.path)
            cats = [int(category_ids[label]) for label in dets.labels]
        xywh = xyxy_to_xywh(dets.boxes).tolist()
        for bbox, score, cat in zip(xywh, dets.scores.tolist(), cats):
            results.append({"image_id": out_id, "category_id": cat, "bbox": bbox, "score": score})
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(results))
    log.info("wrote %d detections of %d images to %s", len(results), len(store), out)
    return len(results)


def to_voc_comp4(store: DetectionStore, out_dir: str | Path, split: str | None = None) -> list[Path]:
    """Write ``comp4_det_{split}_{class}.txt`` for every class (empty files included, as the devkit wants).

    Lines are ``image_id score xmin ymin xmax ymax`` with VOC's 1-based inclusive coordinates, in
    store order. ``split`` defaults to the store's. Each file is written atomically; returns the paths.
    """
    split = store.header.split if split is None else split
    lines: list[list[str]] = [[] for _ in store.classes]
    for image_id, dets in store.items():
        voc_boxes = to_voc_xml(dets.boxes)
        for box, score, label in zip(voc_boxes, dets.scores.tolist(), dets.labels.tolist()):
            coords = " ".join(f"{v:.{COMP4_BOX_DECIMALS}f}" for v in box)
            lines[label].append(f"{image_id} {score:.{COMP4_SCORE_DECIMALS}f} {coords}\n")
    out_dir = Path(out_dir)
    paths = []
    for name, class_lines in zip(store.classes, lines):
        path = out_dir / f"comp4_det_{split}_{name}.txt"
        with atomic_path(path) as tmp:
            tmp.write_text("".join(class_lines))
        paths.append(path)
    log.info("wrote %d comp4 files to %s", len(paths), out_dir)
    return paths


def check_image_detections(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, num_classes: int,
                           image_id: str, path: Path) -> None:
    """Raise if one image's detections are not finite (x1, y1, x2, y2) boxes with finite scores and
    labels in ``[0, num_classes)`` (shared by the detection and mask stores)."""
    if not (boxes.shape[0] == scores.shape[0] == labels.shape[0]):
        raise ValueError(f"image {image_id!r}: {boxes.shape[0]} boxes, {scores.shape[0]} scores, "
                         f"{labels.shape[0]} labels")
    if not np.isfinite(boxes).all() or np.any(boxes[:, 2:] < boxes[:, :2]):
        raise ArtifactError("detection boxes must be finite (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1",
                           path=path, image_id=image_id)
    if not np.isfinite(scores).all():
        raise ArtifactError("detection scores must be finite", path=path, image_id=image_id)
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0
                        or labels.max() >= num_classes):
        raise ArtifactError(f"detection labels must be integers in [0, {num_classes}), found "
                           f"{sorted(set(labels.tolist()))[:10]}", path=path, image_id=image_id)


def _numeric_image_id(image_id: str, path: Path) -> int:
    try:
        return int(image_id)
    except ValueError:
        raise ArtifactError("COCO results need integer image ids; this id is not a decimal number "
                           "(export without category_ids for the package's string ids)",
                           path=path, image_id=image_id) from None
