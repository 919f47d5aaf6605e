"""Anyone's detections, read into flat arrays aligned with a split's ground truth.

Accepted inputs (chosen by :func:`read_detections` from the path):

* the package's detections HDF5 (``wsjds.detections``, see :mod:`wsjds.artifacts.detections`);
* a JSON list of ``{"image_id": str, "category_id": int, "bbox": [x, y, w, h], "score": float}``
  with 0-based class indices into the dataset's class list and boxes in the package convention
  (continuous 0-based coordinates, COCO-style ``[x, y, w, h]``);
* a directory of VOC devkit ``comp4_det_{split}_{class}.txt`` files (1-based inclusive boxes).

Every entry is checked: an unknown image id, a class index out of range, a malformed box or a
non-finite score raises :class:`ArtifactError` naming the file and the image id. Input order is
kept: it is the tie-break order of equal scores in every metric.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import h5py
import numpy as np

from wsjds.boxes import from_voc_xml, xywh_to_xyxy
from wsjds.errors import ArtifactError
from wsjds.artifacts.detections import DETECTIONS_FORMAT, DetectionStore

log = logging.getLogger(__name__)

HDF5_SUFFIXES = (".h5", ".hdf5")
JSON_SUFFIXES = (".json",)
COMP4_PATTERN = "comp4_det_{split}_{name}.txt"


@dataclass(frozen=True)
class FlatDetections:
    """D detections of a split. ``image_index`` (D,) int64 into ``image_ids``; ``boxes`` (D, 4)
    float64 in package convention (as the devkit matches: a JSON box within 1e-7 IoU of the
    threshold is never moved across it by a cast; HDF5's float32 boxes convert exactly);
    ``scores`` (D,) float64; ``labels`` (D,) int64 (0-based)."""

    image_ids: tuple[str, ...]
    image_index: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls, image_ids: Sequence[str]) -> "FlatDetections":
        return cls(tuple(image_ids), np.zeros(0, np.int64), np.zeros((0, 4), np.float64), np.zeros(0),
                   np.zeros(0, np.int64))

    @classmethod
    def from_lists(cls, image_ids: Sequence[str], image_index: Any, boxes: Any, scores: Any,
                   labels: Any) -> "FlatDetections":
        """Build from array-likes (converted and reshaped; no validation)."""
        return cls(tuple(image_ids), np.asarray(image_index, np.int64).reshape(-1),
                   np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64).reshape(-1),
                   np.asarray(labels, np.int64).reshape(-1))


def read_detections(path: str | Path, image_ids: Sequence[str], classes: Sequence[str],
                    split: str | None = None) -> FlatDetections:
    """Read detections for the split ``image_ids`` with class list ``classes`` (format by path, see module doc).

    ``split`` names the comp4 files of a directory input.
    """
    path = Path(path)
    if path.is_dir():
        if split is None:
            raise ValueError("reading a comp4 directory needs the split name")
        return read_comp4_dir(path, image_ids, classes, split)
    if not path.is_file():
        raise ArtifactError("detections file does not exist", path=path)
    if path.suffix.lower() in JSON_SUFFIXES:
        return read_detections_json(path, image_ids, classes)
    if path.suffix.lower() in HDF5_SUFFIXES or h5py.is_hdf5(path):
        return read_detections_hdf5(path, image_ids, classes)
    raise ArtifactError(f"unknown detections format (expected {', '.join(HDF5_SUFFIXES + JSON_SUFFIXES)} "
                       "or a directory of comp4 files)", path=path)


def read_detections_hdf5(path: str | Path, image_ids: Sequence[str], classes: Sequence[str]) -> FlatDetections:
    """The package's detections HDF5; its ``classes`` attribute must equal ``classes``."""
    index = {image_id: i for i, image_id in enumerate(image_ids)}
    with DetectionStore.open(path) as store:
        if tuple(store.classes) != tuple(classes):
            raise ArtifactError(f"{DETECTIONS_FORMAT} file has classes {list(store.classes)} but the dataset has "
                               f"{list(classes)}", path=path)
        parts_index, parts_boxes, parts_scores, parts_labels = [], [], [], []
        for image_id, dets in store.items():
            if image_id not in index:
                raise ArtifactError("image id of the detections is not in the split", path=path, image_id=image_id)
            parts_index.append(np.full(len(dets), index[image_id], np.int64))
            parts_boxes.append(dets.boxes)
            parts_scores.append(dets.scores)
            parts_labels.append(dets.labels)
        _log_coverage(path, len(store), len(image_ids))
    if not parts_index:
        return FlatDetections.empty(image_ids)
    flat = FlatDetections.from_lists(image_ids, np.concatenate(parts_index), np.concatenate(parts_boxes),
                                     np.concatenate(parts_scores), np.concatenate(parts_labels))
    _validate(flat, len(classes), path)
    return flat


def read_detections_json(path: str | Path, image_ids: Sequence[str], classes: Sequence[str]) -> FlatDetections:
    """A JSON list in the package's form (string image ids, 0-based ``category_id``, ``[x, y, w, h]``)."""
    path = Path(path)
    return parse_detections_list(load_json_list(path), image_ids, classes, path)


def load_json_list(path: Path) -> list:
    """The JSON list in ``path``; anything else is a :class:`ArtifactError` naming the file."""
    try:
        entries = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"not valid JSON ({exc})", path=path) from exc
    if not isinstance(entries, list):
        raise ArtifactError(f"expected a JSON list of detections, found {type(entries).__name__}", path=path)
    return entries


def parse_detections_list(entries: list, image_ids: Sequence[str], classes: Sequence[str],
                          path: Path) -> FlatDetections:
    """Check and convert package-form entries (in list order) to :class:`FlatDetections`; ``path`` is for errors."""
    index = {image_id: i for i, image_id in enumerate(image_ids)}
    try:  # fast path: columns by comprehension; any malformed entry falls through to the per-entry scan
        rows = [index[e["image_id"]] for e in entries]
        label_list = [e["category_id"] for e in entries]
        bbox = np.array([e["bbox"] for e in entries])
        scores = np.array([e["score"] for e in entries])
        if not all(type(v) is int for v in label_list):
            raise TypeError("category_id must be an integer")
        if entries and (bbox.dtype.kind not in "iuf" or bbox.shape != (len(entries), 4)
                        or scores.dtype.kind not in "iuf" or scores.shape != (len(entries),)):
            raise TypeError("bbox and score must be numbers")
    except (KeyError, TypeError, ValueError):
        _raise_first_bad_entry(entries, index, len(classes), path)
        raise  # unreachable: the scan raises
    bbox = bbox.astype(np.float64).reshape(len(entries), 4)
    labels = np.array(label_list, dtype=np.int64)
    boxes = _xywh_checked(bbox, path, lambda k: entries[k]["image_id"])
    flat = FlatDetections.from_lists(image_ids, rows, boxes, scores, labels)
    _validate(flat, len(classes), path)
    _log_coverage(path, len(set(rows)), len(image_ids))
    return flat


def read_comp4_dir(directory: str | Path, image_ids: Sequence[str], classes: Sequence[str],
                   split: str) -> FlatDetections:
    """VOC devkit result files ``comp4_det_{split}_{class}.txt``: ``id score xmin ymin xmax ymax`` per line.

    A missing class file means no detections of that class (logged).
    """
    directory = Path(directory)
    index = {image_id: i for i, image_id in enumerate(image_ids)}
    rows, boxes, scores, labels = [], [], [], []
    for label, name in enumerate(classes):
        path = directory / COMP4_PATTERN.format(split=split, name=name)
        if not path.is_file():
            log.warning("%s is missing: no detections of class %s", path, name)
            continue
        for line_number, line in enumerate(path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise ArtifactError(f"line {line_number}: expected 'image_id score xmin ymin xmax ymax', found "
                                   f"{line!r}", path=path, image_id=fields[0])
            if fields[0] not in index:
                raise ArtifactError(f"line {line_number}: image id is not in the split", path=path,
                                   image_id=fields[0])
            try:
                values = [float(v) for v in fields[1:]]
            except ValueError:
                raise ArtifactError(f"line {line_number}: expected numbers, found {line!r}", path=path,
                                   image_id=fields[0]) from None
            rows.append(index[fields[0]])
            scores.append(values[0])
            boxes.append(from_voc_xml(*values[1:]))
            labels.append(label)
    if not rows:
        return FlatDetections.empty(image_ids)
    flat = FlatDetections.from_lists(image_ids, rows, boxes, scores, labels)
    _validate(flat, len(classes), directory)
    return flat


def _validate(flat: FlatDetections, num_classes: int, path: Path) -> None:
    """Class indices in range, finite scores, finite boxes with x2 >= x1 and y2 >= y1."""
    bad_label = (flat.labels < 0) | (flat.labels >= num_classes)
    bad_score = ~np.isfinite(flat.scores)
    bad_box = ~np.isfinite(flat.boxes).all(axis=1) | np.any(flat.boxes[:, 2:] < flat.boxes[:, :2], axis=1)
    for bad, what in ((bad_label, f"category_id out of range [0, {num_classes})"),
                      (bad_score, "score is not a finite number"),
                      (bad_box, "malformed box (non-finite, or negative width or height)")):
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ArtifactError(f"detection {k}: {what}: category_id={int(flat.labels[k])}, score={flat.scores[k]}, "
                               f"box={flat.boxes[k].tolist()}", path=path,
                               image_id=flat.image_ids[int(flat.image_index[k])])


def _xywh_checked(bbox: np.ndarray, path: Path, entry_id: Callable[[int], str]) -> np.ndarray:
    """COCO-style (D, 4) ``[x, y, w, h]`` -> package boxes, rejecting non-finite values and negative sizes."""
    bad = ~np.isfinite(bbox).all(axis=1) | (bbox[:, 2] < 0) | (bbox[:, 3] < 0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ArtifactError(f"detection {k}: malformed bbox {bbox[k].tolist()} (expected finite [x, y, w, h] "
                           "with w >= 0 and h >= 0)", path=path, image_id=entry_id(k))
    return xywh_to_xyxy(bbox, np.float64)


def _raise_first_bad_entry(entries: list, index: dict[str, int], num_classes: int, path: Path) -> None:
    """Find the first malformed entry and raise an error that names it; called only on failure."""
    for k, e in enumerate(entries):
        image_id = e.get("image_id") if isinstance(e, dict) else None
        shown = image_id if isinstance(image_id, str) else None
        if not isinstance(e, dict):
            raise ArtifactError(f"detection {k}: expected an object, found {type(e).__name__}", path=path)
        missing = [key for key in ("image_id", "category_id", "bbox", "score") if key not in e]
        if missing:
            raise ArtifactError(f"detection {k}: missing keys {missing}", path=path, image_id=shown)
        if not isinstance(image_id, str):
            raise ArtifactError(f"detection {k}: image_id must be a string (package convention), found "
                               f"{image_id!r}", path=path)
        if image_id not in index:
            raise ArtifactError(f"detection {k}: image id is not in the split", path=path, image_id=image_id)
        label = e["category_id"]
        if type(label) is not int or not 0 <= label < num_classes:
            raise ArtifactError(f"detection {k}: category_id must be an integer in [0, {num_classes}), found "
                               f"{label!r}", path=path, image_id=image_id)
        bbox = e["bbox"]
        if (not isinstance(bbox, list) or len(bbox) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
            raise ArtifactError(f"detection {k}: malformed bbox {bbox!r} (expected [x, y, w, h])", path=path,
                               image_id=image_id)
        score = e["score"]
        if not isinstance(score, (int, float)) or isinstance(score, bool):
            raise ArtifactError(f"detection {k}: score must be a number, found {score!r}", path=path,
                               image_id=image_id)
    raise ArtifactError("malformed detections list", path=path)


def _log_coverage(path: Path, images_with_detections: int, num_images: int) -> None:
    if images_with_detections < num_images:
        log.info("%s: %d of %d images of the split have detections", path, images_with_detections, num_images)
