"""Ground truth of one split as flat arrays (the shape every evaluator vectorises over), with a cache.

VOC annotations are parsed once per content: the cache key is a SHA-256 over the class list, the
split's ids and every annotation file's bytes, so an edited XML can never serve stale boxes. The
key is kept in memory for the process and, with ``cache_dir``, as an ``.npz`` on disk.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

import numpy as np

from wsjds.data.voc import Annotation, VOCDataset
from wsjds.io import atomic_path

log = logging.getLogger(__name__)

# Bump when the cached arrays' meaning changes, so old cache files are ignored.
_CACHE_VERSION = b"wsjds.ground_truth.v2"
# Splits kept in memory per process (oldest dropped first): a metrics job reads one or two.
_MEMORY_CACHE_SIZE = 4
_MEMORY_CACHE: dict[str, "GroundTruth"] = {}


@dataclass(frozen=True)
class GroundTruth:
    """Objects of a split, flattened. ``image_index`` (G,) int64 indexes ``image_ids``; ``boxes``
    (G, 4) float64 in package convention (COCO's fractional boxes kept as written); ``labels`` (G,) int64 into ``classes``; ``difficult`` (G,) bool.
    ``image_ids`` is the split in list order: the universe detections are checked against."""

    image_ids: tuple[str, ...]
    classes: tuple[str, ...]
    image_index: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def id_to_index(self) -> dict[str, int]:
        """Image id -> position in ``image_ids``."""
        return {image_id: i for i, image_id in enumerate(self.image_ids)}


def ground_truth_from_annotations(image_ids: Sequence[str], annotations: Mapping[str, Annotation],
                                  classes: Sequence[str]) -> GroundTruth:
    """Flatten per-image :class:`Annotation` objects (VOC or COCO readers) in ``image_ids`` order."""
    parts = [annotations[image_id] for image_id in image_ids]
    counts = np.array([len(a.labels) for a in parts], dtype=np.int64)
    return GroundTruth(
        image_ids=tuple(image_ids),
        classes=tuple(classes),
        image_index=np.repeat(np.arange(len(parts), dtype=np.int64), counts),
        boxes=np.concatenate([a.boxes for a in parts]).astype(np.float64).reshape(-1, 4)
        if parts else np.zeros((0, 4), np.float64),
        labels=np.concatenate([a.labels for a in parts]).astype(np.int64) if parts else np.zeros(0, np.int64),
        difficult=np.concatenate([a.difficult for a in parts]).astype(bool) if parts else np.zeros(0, bool),
    )


def load_voc_ground_truth(root: str | Path, split: str, classes: Sequence[str],
                          cache_dir: str | Path | None = None) -> GroundTruth:
    """Ground truth of a VOC-layout split (see :func:`load_ground_truth`)."""
    return load_ground_truth(VOCDataset(root, split, tuple(classes)), cache_dir)


def load_ground_truth(dataset: AnnotatedSplit, cache_dir: str | Path | None = None) -> GroundTruth:
    """Ground truth of a split with box annotations, parsed once per annotation content (see the
    module docstring)."""
    key = _content_key(dataset)
    name = f"{getattr(dataset, 'root', '?')}/{getattr(dataset, 'split', '?')}"
    if key in _MEMORY_CACHE:
        log.debug("ground truth of %s from the in-memory cache", name)
        return _MEMORY_CACHE[key]
    cache_file = None if cache_dir is None else Path(cache_dir) / f"voc_gt_{key}.npz"
    gt = _read_cache(cache_file, dataset) if cache_file is not None and cache_file.is_file() else None
    if gt is None:
        gt = ground_truth_from_annotations(dataset.ids, dataset.annotations(), dataset.classes)
        if cache_file is not None:
            _write_cache(cache_file, gt)
        log.info("parsed %d annotations of %s (%d objects)", len(dataset.ids), name, len(gt.labels))
    else:
        log.info("ground truth of %s from the cache %s", name, cache_file)
    _MEMORY_CACHE[key] = gt
    while len(_MEMORY_CACHE) > _MEMORY_CACHE_SIZE:
        del _MEMORY_CACHE[next(iter(_MEMORY_CACHE))]
    return gt


class AnnotatedSplit(Protocol):
    """What ground truth needs from a split reader (VOCDataset, TagsDataset with boxes)."""

    ids: tuple[str, ...]
    classes: tuple[str, ...]

    def annotation_path(self, image_id: str) -> Path: ...

    def annotations(self) -> Mapping[str, Annotation]: ...


def _content_key(dataset: AnnotatedSplit) -> str:
    digest = hashlib.sha256(_CACHE_VERSION)
    digest.update("\0".join(dataset.classes).encode() + b"\1")
    files: dict[Path, None] = {}
    for image_id in dataset.ids:
        path = dataset.annotation_path(image_id)
        digest.update(image_id.encode() + b"\0" + str(path.name).encode() + b"\1")
        files.setdefault(path)
    for path in files:   # each file once: one COCO JSON may hold every image's boxes
        # A missing file is left for the parser to report with its id and path.
        digest.update(path.read_bytes() if path.is_file() else b"\2missing")
        digest.update(b"\1")
    return digest.hexdigest()


def _read_cache(path: Path, dataset: AnnotatedSplit) -> GroundTruth | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            gt = GroundTruth(image_ids=dataset.ids, classes=dataset.classes,
                             image_index=data["image_index"].astype(np.int64), boxes=data["boxes"].astype(np.float64),
                             labels=data["labels"].astype(np.int64), difficult=data["difficult"].astype(bool))
    except (OSError, KeyError, ValueError) as exc:
        log.warning("ignoring unreadable ground-truth cache %s (%s)", path, exc)
        return None
    return gt


def _write_cache(path: Path, gt: GroundTruth) -> None:
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, image_index=gt.image_index, boxes=gt.boxes, labels=gt.labels, difficult=gt.difficult)
    except OSError as exc:  # a read-only cache directory must not fail the evaluation
        log.warning("could not write the ground-truth cache %s (%s)", path, exc)
