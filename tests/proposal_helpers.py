"""Builders for the proposal tests: tiny VOC-layout datasets, MATLAB v7.3 files, Python 2 pickles, the CLI."""

from __future__ import annotations

import argparse
import io
import pickle
import struct
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np
from PIL import Image

# MATLAB's 128-byte text header of a v7.3 file: text padded to 116 bytes, 8 bytes of subsystem
# offset, version 0x0200 and the endian indicator "IM" (little endian); the HDF5 data follows at 512.
_MAT73_TEXT = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 1970 HDF5 schema 1.00 ."
_MAT73_USERBLOCK = 512


def make_voc(root: Path, splits: dict[str, Sequence[tuple[str, int, int]]], *, images: bool = False,
             seed: int = 0) -> Path:
    """A VOC-layout directory: ``splits`` maps a split name to ``(id, width, height)`` triples.

    Each image has one 'aeroplane' object; with ``images`` a JPEG of coloured rectangles is written.
    """
    rng = np.random.default_rng(seed)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (root / "Annotations").mkdir(exist_ok=True)
    (root / "JPEGImages").mkdir(exist_ok=True)
    for split, entries in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i, _, _ in entries))
        for image_id, width, height in entries:
            (root / "Annotations" / f"{image_id}.xml").write_text(
                f"<annotation><filename>{image_id}.jpg</filename><size><width>{width}</width>"
                f"<height>{height}</height><depth>3</depth></size><object><name>aeroplane</name>"
                f"<difficult>0</difficult><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>{width // 2}</xmax>"
                f"<ymax>{height // 2}</ymax></bndbox></object></annotation>")
            if images:
                pixels = np.full((height, width, 3), 40, dtype=np.uint8) + rng.integers(0, 20, (height, width, 3),
                                                                                        dtype=np.uint8)
                for _ in range(4):
                    x1, y1 = rng.integers(0, width // 2), rng.integers(0, height // 2)
                    x2, y2 = x1 + rng.integers(width // 6, width // 2), y1 + rng.integers(height // 6, height // 2)
                    pixels[y1:y2, x1:x2] = rng.integers(60, 255, 3, dtype=np.uint8)
                Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
    return root


def write_mat73(path: Path, variables: dict[str, Any]) -> Path:
    """Write ``variables`` as MATLAB v7.3 does: an HDF5 file behind a 512-byte MATLAB header, arrays
    stored transposed (column-major), cell arrays as object references into ``#refs#``, strings as
    uint16 char arrays. Values: numeric arrays (MATLAB shape), ``str``, or lists (1 x N cells)."""
    with h5py.File(path, "w", userblock_size=_MAT73_USERBLOCK) as f:
        refs = f.create_group("#refs#")
        counter = iter(range(1 << 30))
        for name, value in variables.items():
            _put_mat73(f, refs, name, value, counter)
    header = _MAT73_TEXT.ljust(116, b" ") + b"\x00" * 8 + struct.pack("<H", 0x0200) + b"IM"
    with path.open("r+b") as f:
        f.write(header)
    return path


def _put_mat73(group: h5py.Group, refs: h5py.Group, name: str, value: Any, counter) -> h5py.Dataset:
    if isinstance(value, list):
        targets = [_put_mat73(refs, refs, f"r{next(counter)}", item, counter) for item in value]
        data = np.array([[t.ref] for t in targets], dtype=h5py.ref_dtype)  # 1 x N cell stored as (N, 1)
        dataset = group.create_dataset(name, data=data)
        dataset.attrs["MATLAB_class"] = np.bytes_("cell")
        return dataset
    if isinstance(value, str):
        dataset = group.create_dataset(name, data=np.array([[ord(c)] for c in value], dtype=np.uint16))
        dataset.attrs["MATLAB_class"] = np.bytes_("char")
        dataset.attrs["MATLAB_int_decode"] = np.int32(2)
        return dataset
    array = np.asarray(value, dtype=np.float64)
    if array.size == 0:
        dataset = group.create_dataset(name, data=np.array(array.shape, dtype=np.uint64))
        dataset.attrs["MATLAB_class"] = np.bytes_("double")
        dataset.attrs["MATLAB_empty"] = np.uint8(1)
        return dataset
    dataset = group.create_dataset(name, data=np.atleast_2d(array).T)
    dataset.attrs["MATLAB_class"] = np.bytes_("double")
    return dataset


def matlab_cell(items: Sequence[Any]) -> np.ndarray:
    """A 1 x N object array, which scipy.io.savemat writes as a MATLAB cell array."""
    cell = np.empty((1, len(items)), dtype=object)
    for k, item in enumerate(items):
        cell[0, k] = item
    return cell


def python2_pickle(data: Any) -> bytes:
    """Pickle ``data`` as Python 2 would: protocol 2, ``bytes`` as Python 2 ``str`` (BINSTRING) and numpy's
    old ``numpy.core`` module path. Loading it needs ``encoding='latin1'``."""

    class Py2Pickler(pickle._Pickler):
        dispatch = pickle._Pickler.dispatch.copy()

        def save_py2_str(self, obj: bytes) -> None:
            n = len(obj)
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256
                       else pickle.BINSTRING + struct.pack("<i", n) + obj)
            self.memoize(obj)

        dispatch[bytes] = save_py2_str

    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(data)
    return buffer.getvalue().replace(b"numpy._core.", b"numpy.core.")


def run_proposals_cli(argv: Sequence[str]) -> int:
    """Run ``wsjds proposals ...`` through the command module's own parser (as wsjds.cli does)."""
    from wsjds.commands import proposals

    parser = argparse.ArgumentParser(prog="wsjds")
    proposals.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def proposal_settings_file(path: Path, root: Path, *, policy: dict[str, Any], selective_search: dict | None = None,
                           import_format: str | None = None, split: str = "trainval", dataset: str = "tiny",
                           kind: str = "voc") -> str:
    """A proposal job's settings file as rule proposal_settings writes it (wsjds.workflow.proposal_job_settings)."""
    import json

    settings: dict[str, Any] = {"dataset": {"name": dataset, "kind": kind, "root": str(root)}, "split": split,
                                "policy": {"whole_image_fallback": False, **policy}}
    if selective_search is not None:
        settings["selective_search"] = selective_search
    if import_format is not None:
        settings["import_format"] = import_format
    path.write_text(json.dumps(settings))
    return str(path)
