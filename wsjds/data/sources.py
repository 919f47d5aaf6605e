"""Where each dataset kind lives on disk, how a user obtains it (used for fail-fast messages), and
how a root says it is the synthetic generator's."""

from __future__ import annotations

import json
from pathlib import Path

SYNTHETIC_MANIFEST_FORMAT = "wsjds.synthetic"     # the "format" of the generator's dataset.json


def is_synthetic_root(root: str | Path) -> bool:
    """Whether ``root`` holds a dataset the synthetic generator wrote (its dataset.json says so)."""
    return manifest_format(root) == SYNTHETIC_MANIFEST_FORMAT


def manifest_format(root: str | Path) -> str | None:
    """The ``format`` a root's dataset.json declares (a root the workflow wrote), else None."""
    try:
        return json.loads((Path(root) / "dataset.json").read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None

_HOW_TO_GET = {
    "voc": (
        "Download the PASCAL VOC {year} devkit tarballs (trainval, and test where public) from "
        "http://host.robots.ox.ac.uk/pascal/VOC/ and extract them so that "
        "{root}/JPEGImages, {root}/Annotations and {root}/ImageSets/Main exist, "
        "or point datasets.{name}.root in config.yaml at your copy."
    ),
    "coco": (
        "Download COCO 2017 images and annotations from https://cocodataset.org/#download and "
        "arrange them as {root}/images/<split>/ and {root}/annotations/instances_<split>.json, "
        "or point datasets.{name}.root in config.yaml at your copy."
    ),
}

SYNTHETIC_DEMO = "snakemake --cores 2   (runs the whole chain on the embedded synthetic dataset)"


def required_path(kind: str, root: str | Path, split: str) -> Path:
    """The file whose presence proves a dataset root is usable for ``split``."""
    root = Path(root)
    if kind == "voc":
        return root / "ImageSets" / "Main" / f"{split}.txt"
    if kind == "coco":
        return root / "annotations" / f"instances_{split}.json"
    raise ValueError(f"dataset kind {kind!r} has no on-disk root to check")


def missing_dataset_message(name: str, kind: str, root: str | Path, split: str, year: int | None = None) -> str:
    """The message shown when a dataset is not where config.yaml says: the expected path, how to
    get the data, and the command for the synthetic demo."""
    expected = required_path(kind, root, split)
    how = _HOW_TO_GET[kind].format(year=year or "", root=root, name=name)
    return (
        f"Dataset {name!r} ({kind}) not found: expected {expected} under datasets.{name}.root = {root!r}.\n"
        f"How to get it: {how}\n"
        f"No data at hand? Run the synthetic demo instead: {SYNTHETIC_DEMO}"
    )
