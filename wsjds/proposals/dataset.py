"""The little the proposal stage needs from a dataset, behind one interface so COCO can plug in later."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from wsjds.data.kinds import CHAIN_KINDS, open_split

# Dataset kinds the proposal commands can open.
DATASET_KINDS: tuple[str, ...] = CHAIN_KINDS


class ImageSource(Protocol):
    """One split of a dataset: its ids in list order, image sizes, pixels and file paths."""

    ids: tuple[str, ...]

    def image_size(self, image_id: str) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        ...

    def read_image(self, image_id: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        ...

    def image_path(self, image_id: str) -> Path:
        """The image file (named in error messages)."""
        ...


def open_image_source(kind: str, root: str | Path, split: str) -> ImageSource:
    """Open ``split`` of a dataset of ``kind`` (one of :data:`DATASET_KINDS`) under ``root``."""
    if kind not in DATASET_KINDS:
        raise ValueError(f"dataset kind {kind!r} is not supported by the proposal stage; "
                         f"expected one of {list(DATASET_KINDS)}")
    return open_split(kind, root, split)
