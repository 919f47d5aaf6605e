"""The one way to open a split of any dataset kind the chain trains on, and its class list.

``voc`` and ``synthetic`` use the VOC devkit layout with a fixed class list; ``tags`` is a root
prepared by :func:`wsjds.data.tags.prepare_tags_dataset`, whose classes its manifest holds.
"""

from __future__ import annotations

from pathlib import Path

from wsjds.data.classes import classes_for
from wsjds.data.sources import is_synthetic_root
from wsjds.data.tags import TagsDataset, is_tags_root
from wsjds.data.voc import VOCDataset

# Kinds whose splits the proposal, training and detection stages read.
CHAIN_KINDS: tuple[str, ...] = ("voc", "synthetic", "tags")


def open_split(kind: str, root: str | Path, split: str, include_difficult_labels: bool = False,
               boxes: str | Path | None = None):
    """A reader of ``split`` (ids, image_path, image_size, read_image, image_labels, annotation).
    ``boxes``: a tags dataset's box annotations (evaluation only); other kinds hold their own."""
    if kind == "tags":
        return TagsDataset(root, split, boxes)
    if boxes is not None:
        raise ValueError(f"boxes are given separately only for tags datasets, not {kind!r}")
    if kind not in CHAIN_KINDS:
        raise ValueError(f"dataset kind {kind!r} cannot be opened by root; expected one of {list(CHAIN_KINDS)}")
    return VOCDataset(root, split, classes_for(kind), include_difficult_labels)


def dataset_classes(kind: str, root: str | Path) -> tuple[str, ...]:
    """Class list of a dataset: fixed for voc / synthetic, from the manifest for tags."""
    if kind == "tags":
        import json

        return tuple(json.loads((Path(root) / "dataset.json").read_text())["classes"])
    return classes_for(kind)


def root_kind(root: str | Path) -> str:
    """The kind a root declares in its dataset.json (synthetic, tags), else ``voc``."""
    if is_synthetic_root(root):
        return "synthetic"
    return "tags" if is_tags_root(root) else "voc"
