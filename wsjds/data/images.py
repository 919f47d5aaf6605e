"""Strict image and label-map decoding: a truncated or unreadable file is an error, never a grey patch."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from wsjds.errors import DatasetError


def read_rgb(path: str | Path, image_id: str | None = None,
             expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an image file fully -> (H, W, 3) uint8 RGB.

    ``expected_size`` is ``(width, height)`` from the annotation; a mismatch is an error because
    every box would be wrong.
    """
    image = np.asarray(_decode(path, image_id, allowed_modes=None).convert("RGB"), dtype=np.uint8)
    _check_size((image.shape[1], image.shape[0]), path, image_id, expected_size)
    return image


def check_image_header(path: str | Path, image_id: str | None = None,
                       expected_size: tuple[int, int] | None = None) -> None:
    """The cheap check before heavy work: the file exists and its header is an image's of
    ``expected_size`` ``(width, height)``. Reads the header only; :func:`read_rgb` still decodes."""
    _check_size(image_header_size(path, image_id), path, image_id, expected_size)


def image_header_size(path: str | Path, image_id: str | None = None) -> tuple[int, int]:
    """``(width, height)`` from the file's header, without decoding; a missing or unreadable file
    is a :class:`DatasetError`."""
    with _opened(path, image_id) as image:
        return image.size


def read_label_map(path: str | Path, image_id: str | None = None,
                   expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a palette (or greyscale) label PNG -> (H, W) uint8 of indices (255 = void)."""
    image = np.asarray(_decode(path, image_id, allowed_modes=("P", "L")), dtype=np.uint8)
    _check_size((image.shape[1], image.shape[0]), path, image_id, expected_size)
    return image


def _decode(path: str | Path, image_id: str | None, allowed_modes: tuple[str, ...] | None) -> Image.Image:
    with _opened(path, image_id) as image:
        image.load()  # raises on truncated data (PIL's LOAD_TRUNCATED_IMAGES stays False)
        if allowed_modes is not None and image.mode not in allowed_modes:
            raise DatasetError(f"expected a label map in mode {' or '.join(allowed_modes)}, found mode {image.mode!r}",
                               path=path, image_id=image_id)
        return image.copy()


@contextmanager
def _opened(path: str | Path, image_id: str | None) -> Iterator[Image.Image]:
    """The PIL image of ``path``; a missing file or any decoding failure inside the block is a
    :class:`DatasetError` naming the file and the id."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError("image file is missing", path=path, image_id=image_id)
    try:
        with Image.open(path) as image:
            yield image
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise DatasetError(f"cannot decode image ({exc})", path=path, image_id=image_id) from exc


def _check_size(size: tuple[int, int], path: str | Path, image_id: str | None,
                expected_size: tuple[int, int] | None) -> None:
    if expected_size is not None and tuple(size) != tuple(expected_size):
        raise DatasetError(f"image is {size[0]}x{size[1]} but the annotation says {expected_size[0]}x{expected_size[1]}",
                           path=path, image_id=image_id)


def rgb_tensor(image: np.ndarray) -> "torch.Tensor":
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 0-255, the input every model of the package takes."""
    import torch   # here, so readers and evaluation start without loading torch

    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
