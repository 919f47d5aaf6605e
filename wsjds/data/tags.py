"""Datasets with image-level tags only: a folder of images and a CSV ``image,tags``.

:func:`prepare_tags_dataset` is the cheap check before any heavy job: it reads the user's CSV,
checks every row and every image header, assigns the train / test split and writes a normalised
copy of the labels under the dataset's root (``results/{ds}/dataset``)::

    dataset.json        format wsjds.tags: classes, the images folder, counts
    {split}.csv         image,width,height,tags (one row per image of the split, the CSV's order)

:class:`TagsDataset` reads one split of that root. Image ids are the image paths relative to the
images folder, without their extension (``sub/img001.jpg`` -> ``sub/img001``). Box annotations
never enter the root: an evaluation opens the split with ``boxes`` (a VOC XML folder or a COCO
JSON), so adding them later reruns no training, and training cannot read them.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsjds.data.classes import class_index
from wsjds.errors import DatasetError
from wsjds.data.images import check_image_header, image_header_size, read_rgb
from wsjds.data.voc import Annotation, parse_annotation
from wsjds.io import atomic_path, write_json

log = logging.getLogger(__name__)

TAGS_FORMAT = "wsjds.tags"
TAGS_VERSION = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")    # compared case-insensitively
LABELS_HEADER = ("image", "tags")
SPLIT_FILE_HEADER = ("image", "split")
_SPLIT_HEADER = ("image", "width", "height", "tags")


@dataclass(frozen=True)
class SplitRule:
    """How labelled images are divided: a seeded random ``test_fraction``, or a CSV ``image,split``."""

    train_split: str
    test_split: str
    test_fraction: float | None = None
    seed: int = 0
    split_file: str | None = None


def prepare_tags_dataset(images: str | Path, labels: str | Path, out: str | Path, split: SplitRule,
                         classes: Sequence[str] | None = None, progress: bool = True) -> dict:
    """Check a tags dataset and write its normalised root at ``out`` (atomically). Returns the
    manifest. Every problem is a :class:`DatasetError` naming the file and the row."""
    from tqdm import tqdm

    images, labels = Path(images), Path(labels)
    if not images.is_dir():
        raise DatasetError("images folder does not exist (datasets.<name>.images)", path=images)
    rows = read_labels_csv(labels)
    found = class_list(rows, labels, classes)
    index = class_index(found)
    for row, (image, tags) in rows.items():
        unknown = sorted(set(tags) - set(index))
        if unknown:
            raise DatasetError(f"row {row}: image {image!r} has tags {unknown} not among classes "
                               f"{list(found)} (datasets.<name>.classes)", path=labels)
    listed = {image for image, _ in rows.values()}
    unlisted = sorted(p.relative_to(images).as_posix() for p in images.rglob("*")
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                      and p.relative_to(images).as_posix() not in listed)
    if unlisted:
        log.warning("%d image(s) under %s are not in %s and are skipped, e.g. %s", len(unlisted), images, labels,
                    ", ".join(unlisted[:5]))
    sizes = {}
    for row, (image, _) in tqdm(rows.items(), desc="image headers", unit="img", disable=not progress):
        sizes[image] = _checked_size(images / image, image_id(image), row, labels)
    assignment = _assign_splits([image for image, _ in rows.values()], split)
    by_split = {split.train_split: [], split.test_split: []}
    for image, tags in rows.values():
        by_split[assignment[image]].append((image, tags))
    _check_every_class_trains(by_split[split.train_split], found, labels, split.train_split)
    manifest = {
        "format": TAGS_FORMAT, "version": TAGS_VERSION, "classes": list(found),
        "images": str(images.resolve()), "labels": str(labels.resolve()),
        "splits": {name: len(members) for name, members in by_split.items()},
        "unlisted_images_skipped": len(unlisted),
    }
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for name, members in by_split.items():
            with open(tmp / f"{name}.csv", "w", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(_SPLIT_HEADER)
                writer.writerows((image, *sizes[image], " ".join(tags)) for image, tags in members)
        write_json(tmp / "dataset.json", manifest)
    log.info("tags dataset %s: %s images, %d classes, %d unlisted images skipped -> %s",
             labels, manifest["splits"], len(found), len(unlisted), out)
    return manifest


def read_labels_csv(path: str | Path) -> dict[int, tuple[str, tuple[str, ...]]]:
    """Row number (1 = the header) -> (image path relative to the images folder, its tags in the
    order written). Errors: no file, another header, an empty image or tags field, a repeated
    image, an image that is not a jpg / jpeg / png, an id with white space."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError("labels CSV is missing (datasets.<name>.labels)", path=path)
    rows: dict[int, tuple[str, tuple[str, ...]]] = {}
    first_row: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = tuple(cell.strip() for cell in next(reader, ()))
        if header != LABELS_HEADER:
            raise DatasetError(f"expected the header {','.join(LABELS_HEADER)!r} on row 1, found {','.join(header)!r}",
                               path=path)
        for row, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != 2:
                raise DatasetError(f"row {row}: expected 2 fields (image,tags), found {len(cells)}: {cells}", path=path)
            image, tags = cells[0].strip(), tuple(cells[1].split())
            if not image:
                raise DatasetError(f"row {row}: the image field is empty", path=path)
            if Path(image).suffix.lower() not in IMAGE_SUFFIXES:
                raise DatasetError(f"row {row}: {image!r} is not a {' / '.join(IMAGE_SUFFIXES)} file", path=path)
            if any(ch.isspace() for ch in image_id(image)):
                raise DatasetError(f"row {row}: image path {image!r} contains white space (ids must not)", path=path)
            if image in first_row:
                raise DatasetError(f"row {row}: image {image!r} is listed again (first on row {first_row[image]})",
                                   path=path)
            if not tags:
                raise DatasetError(f"row {row}: image {image!r} has no tags; every listed image needs at least one "
                                   f"class (remove the row to leave the image out)", path=path)
            repeated = sorted({t for t in tags if tags.count(t) > 1})
            if repeated:
                raise DatasetError(f"row {row}: image {image!r} repeats tags {repeated}", path=path)
            first_row[image] = row
            rows[row] = (image, tags)
    if not rows:
        raise DatasetError("labels CSV has no rows after its header", path=path)
    ids = {}
    for row, (image, _) in rows.items():
        other = ids.setdefault(image_id(image), row)
        if other != row:
            raise DatasetError(f"row {row}: image {image!r} has the same id {image_id(image)!r} as row {other} "
                               f"(ids are paths without the extension)", path=path)
    return rows


def class_list(rows: dict[int, tuple[str, tuple[str, ...]]], labels: str | Path,
               classes: Sequence[str] | None = None) -> tuple[str, ...]:
    """The configured classes (checked for repeats), or the sorted tags of the CSV."""
    if classes is None:
        return tuple(sorted({tag for _, tags in rows.values() for tag in tags}))
    repeated = sorted({c for c in classes if list(classes).count(c) > 1})
    if repeated or not classes:
        raise DatasetError(f"datasets.<name>.classes must list distinct class names, got {list(classes)}",
                           path=labels)
    return tuple(classes)


def tags_classes(labels: str | Path, classes: Sequence[str] | None = None) -> tuple[str, ...]:
    """The class list of a tags dataset, as :func:`prepare_tags_dataset` will write it."""
    return class_list(read_labels_csv(labels), labels, classes)


def image_id(relative_path: str) -> str:
    """``sub/img001.jpg`` -> ``sub/img001``: the id of an image in every artifact."""
    path = Path(relative_path)
    return path.with_suffix("").as_posix()


def is_tags_root(root: str | Path) -> bool:
    """Whether ``root`` holds a dataset :func:`prepare_tags_dataset` wrote."""
    from wsjds.data.sources import manifest_format

    return manifest_format(root) == TAGS_FORMAT


class TagsDataset:
    """One split of a prepared tags root: ids, pixels, image labels; with ``boxes`` (evaluation
    only) also the objects of each image."""

    def __init__(self, root: str | Path, split: str, boxes: str | Path | None = None):
        self.root, self.split = Path(root), split
        manifest_path = self.root / "dataset.json"
        if not is_tags_root(self.root):
            raise DatasetError(f"not a prepared tags dataset (no dataset.json of format {TAGS_FORMAT!r}); "
                               f"rule tags_dataset writes it", path=manifest_path)
        self.manifest = json.loads(manifest_path.read_text())
        self.classes: tuple[str, ...] = tuple(self.manifest["classes"])
        self.images = Path(self.manifest["images"])
        self.boxes = None if boxes is None else Path(boxes)
        if self.boxes is not None and not self.boxes.exists():
            raise DatasetError("box annotations not found: expected a folder of VOC XML files or a COCO instances "
                               "JSON (datasets.<name>.boxes)", path=self.boxes)
        split_path = self.root / f"{split}.csv"
        if not split_path.is_file():
            raise DatasetError(f"split {split!r} has no image list; splits: {sorted(self.manifest['splits'])}",
                               path=split_path)
        self._files, self._sizes, self._labels = {}, {}, {}
        index = class_index(self.classes)
        with open(split_path, newline="") as handle:
            for image, width, height, tags in list(csv.reader(handle))[1:]:
                key = image_id(image)
                self._files[key], self._sizes[key] = image, (int(width), int(height))
                labels = np.zeros(len(self.classes), np.float32)
                labels[[index[t] for t in tags.split()]] = 1.0
                self._labels[key] = labels
        self.ids: tuple[str, ...] = tuple(self._files)
        self._coco = None
        self._annotations: dict[str, Annotation] = {}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_boxes(self) -> bool:
        return self.boxes is not None

    def image_path(self, image_id: str) -> Path:
        return self.images / self._file(image_id)

    def image_size(self, image_id: str) -> tuple[int, int]:
        """``(width, height)`` as checked by :func:`prepare_tags_dataset`."""
        self._file(image_id)
        return self._sizes[image_id]

    def image_labels(self, image_id: str) -> np.ndarray:
        """(C,) float32 from the tags alone."""
        self._file(image_id)
        return self._labels[image_id].copy()

    def read_image(self, image_id: str) -> np.ndarray:
        return read_rgb(self.image_path(image_id), image_id, expected_size=self.image_size(image_id))

    def check_image(self, image_id: str) -> None:
        check_image_header(self.image_path(image_id), image_id, expected_size=self.image_size(image_id))

    def annotation_path(self, image_id: str) -> Path:
        """The file holding the image's boxes (a VOC XML, or the one COCO JSON)."""
        boxes = self._require_boxes()
        return boxes if boxes.is_file() else boxes / f"{image_id}.xml"

    def annotation(self, image_id: str) -> Annotation:
        """Boxes of one image from ``boxes`` (evaluation only: training never calls this)."""
        if image_id not in self._annotations:
            self._file(image_id)
            path = self.annotation_path(image_id)
            if path.suffix.lower() == ".json":
                annotation = self._coco_annotation(image_id, path)
            else:
                annotation = parse_annotation(path, image_id, class_index(self.classes))
            if (annotation.width, annotation.height) != self.image_size(image_id):
                raise DatasetError(f"annotation says {annotation.width}x{annotation.height} but the image is "
                                   f"{self.image_size(image_id)[0]}x{self.image_size(image_id)[1]}",
                                   path=path, image_id=image_id)
            self._annotations[image_id] = annotation
        return self._annotations[image_id]

    def annotations(self) -> dict[str, Annotation]:
        return {image_id: self.annotation(image_id) for image_id in self.ids}

    def _file(self, image_id: str) -> str:
        try:
            return self._files[image_id]
        except KeyError:
            raise DatasetError(f"image id not in split {self.split!r}", path=self.root / f"{self.split}.csv",
                               image_id=image_id) from None

    def _require_boxes(self) -> Path:
        if self.boxes is None:
            raise DatasetError("this tags dataset has no box annotations (set datasets.<name>.boxes to evaluate "
                               "boxes)", path=self.root / "dataset.json")
        return self.boxes

    def _coco_annotation(self, image_id: str, path: Path) -> Annotation:
        """The image's objects from a COCO JSON, matched by ``file_name``, classes by name."""
        if self._coco is None:
            from wsjds.data.coco import COCODataset

            coco = COCODataset(path, include_difficult_labels=True)
            missing = sorted(set(self.classes) - set(coco.classes))
            if missing:
                raise DatasetError(f"COCO categories {list(coco.classes)} lack the classes {missing}", path=path)
            by_file = {coco.image_info(i)["file_name"]: i for i in coco.ids}
            remap = np.array([self.classes.index(c) if c in self.classes else -1 for c in coco.classes], np.int64)
            self._coco = (coco, by_file, remap)
        coco, by_file, remap = self._coco
        file = self._file(image_id)
        if file not in by_file:
            raise DatasetError(f"no COCO image with file_name {file!r}", path=path, image_id=image_id)
        ann = coco.annotation(by_file[file])
        keep = remap[ann.labels] >= 0
        return Annotation(image_id, ann.width, ann.height, ann.boxes[keep], remap[ann.labels[keep]],
                          ann.difficult[keep], ann.truncated[keep])


def _checked_size(path: Path, image_id: str, row: int, labels: Path) -> tuple[int, int]:
    try:
        return image_header_size(path, image_id)
    except DatasetError as exc:
        raise DatasetError(f"row {row} of {str(labels)!r}: {exc}") from exc


def _assign_splits(images: list[str], rule: SplitRule) -> dict[str, str]:
    """Image -> split name, from the split file or a seeded random fraction."""
    if rule.split_file is not None:
        return _read_split_file(Path(rule.split_file), images, rule)
    if rule.test_fraction is None or not 0.0 < rule.test_fraction < 1.0:
        raise DatasetError(f"split.test_fraction must be in (0, 1), got {rule.test_fraction}")
    order = np.random.default_rng(rule.seed).permutation(len(images))
    num_test = int(round(rule.test_fraction * len(images)))
    if num_test == 0 or num_test == len(images):
        raise DatasetError(f"split.test_fraction {rule.test_fraction} of {len(images)} images leaves "
                           f"{num_test} test images; both splits need at least one")
    test = {images[i] for i in order[:num_test]}
    return {image: rule.test_split if image in test else rule.train_split for image in images}


def _read_split_file(path: Path, images: list[str], rule: SplitRule) -> dict[str, str]:
    if not path.is_file():
        raise DatasetError("split file is missing (datasets.<name>.split.split_file)", path=path)
    allowed = (rule.train_split, rule.test_split)
    assignment: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = tuple(cell.strip() for cell in next(reader, ()))
        if header != SPLIT_FILE_HEADER:
            raise DatasetError(f"expected the header {','.join(SPLIT_FILE_HEADER)!r} on row 1, found "
                               f"{','.join(header)!r}", path=path)
        for row, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != 2 or cells[1].strip() not in allowed:
                raise DatasetError(f"row {row}: expected image,split with split one of {list(allowed)}, found {cells}",
                                   path=path)
            image = cells[0].strip()
            if image in assignment:
                raise DatasetError(f"row {row}: image {image!r} is listed again", path=path)
            assignment[image] = cells[1].strip()
    unknown = sorted(set(assignment) - set(images))
    if unknown:
        raise DatasetError(f"images not in the labels CSV: {unknown[:5]}", path=path)
    missing = [image for image in images if image not in assignment]
    if missing:
        raise DatasetError(f"{len(missing)} labelled image(s) have no split, e.g. {missing[:5]}", path=path)
    return assignment


def _check_every_class_trains(members: list[tuple[str, tuple[str, ...]]], classes: Sequence[str], labels: Path,
                              split: str) -> None:
    present = {tag for _, tags in members for tag in tags}
    empty = [c for c in classes if c not in present]
    if empty:
        raise DatasetError(f"classes {empty} have no image in the {split!r} split; a detector cannot learn a class "
                           f"it never sees (add images, or drop the class from datasets.<name>.classes)", path=labels)
