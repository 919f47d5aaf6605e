"""Ragged per-image arrays keyed by string image id, in one HDF5 file: the project's one writer/reader.

Every per-image artifact (proposals, detections, pseudo ground truth) is a set of *fields*, each a
ragged array whose leading axis runs over the rows (boxes) of one image. Layout::

    /image_ids          (N,)      variable-length UTF-8 strings, in the order written
    /offsets            (N + 1,)  int64: rows of image i are [offsets[i], offsets[i + 1])
    /width, /height     (N,)      int32 image size in pixels
    /<field>            (R, ...)  one concatenated dataset per field (R = offsets[-1])

Attributes: ``format``, ``version``, ``dataset``, ``split``, ``box_convention``, ``classes``,
``source``, ``parameters`` (JSON), ``producer`` and ``fields`` (JSON list of field names).
Nothing time-dependent is stored, so the same input gives the same bytes. Writers go through
:func:`wsjds.io.atomic_path`; readers load the index on open for O(1) access by id and check the
attributes, failing with the file and the mismatch named.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Mapping

import h5py
import numpy as np

from wsjds import __version__
from wsjds.boxes import BOX_CONVENTION
from wsjds.errors import ArtifactError
from wsjds.io import atomic_path

PRODUCER = f"wsjds {__version__}"

# Element dtype of a variable-length bytes field (one byte string per row, e.g. a COCO RLE's counts):
# HDF5 variable-length ASCII strings, read back as Python bytes.
VLEN_BYTES = h5py.string_dtype("ascii")

# Rows per HDF5 chunk. 4,096 rows of a (R, 4) float32 field are 64 KiB: one image's proposals
# (a few thousand rows) touch at most two chunks, and the default 1 MiB chunk cache holds several.
DEFAULT_CHUNK_ROWS = 4096

_INDEX_DATASETS = ("image_ids", "offsets", "width", "height")
_REQUIRED_ATTRS = ("format", "version", "dataset", "split", "box_convention", "classes", "source",
                   "parameters", "producer", "fields")


class HDF5FormatError(ArtifactError):
    """An HDF5 artifact that is missing, unreadable, or not what the reader expects."""


@dataclass(frozen=True)
class Header:
    """What an artifact is and what produced it; written as HDF5 attributes.

    ``parameters`` must be JSON-serialisable; it is stored with sorted keys so equal parameters
    give equal bytes.
    """

    format: str
    version: int
    dataset: str
    split: str
    source: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    box_convention: str = BOX_CONVENTION
    producer: str = PRODUCER


@dataclass(frozen=True)
class FieldSpec:
    """One ragged field: element dtype and the shape of one row (``()`` for scalars, ``(4,)`` for boxes).
    :data:`VLEN_BYTES` makes a field of variable-length byte strings (rows given as bytes objects)."""

    dtype: Any
    row_shape: tuple[int, ...] = ()


class RaggedWriter:
    """Stream images into a new ragged HDF5 file; the file appears under ``path`` only on success.

    Use as a context manager::

        with RaggedWriter(path, header, {"boxes": FieldSpec(np.float32, (4,))}) as w:
            w.append("000005", 500, 375, boxes=boxes)
    """

    def __init__(self, path: str | Path, header: Header, fields: Mapping[str, FieldSpec],
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, compression: str | None = None):
        if not fields:
            raise ValueError("a ragged file needs at least one field")
        reserved = sorted(set(fields) & set(_INDEX_DATASETS))
        if reserved:
            raise ValueError(f"field names {reserved} are reserved for the index")
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        self.path = Path(path)
        self.header = header
        self.fields = {name: FieldSpec(np.dtype(spec.dtype), tuple(spec.row_shape)) for name, spec in fields.items()}
        self.chunk_rows = chunk_rows
        self.compression = compression
        self._ids: list[str] = []
        self._seen: set[str] = set()
        self._widths: list[int] = []
        self._heights: list[int] = []
        self._offsets: list[int] = [0]
        self._buffer: dict[str, list[np.ndarray]] = {name: [] for name in self.fields}
        self._buffered_rows = 0
        self._written_rows = 0
        self._stack: ExitStack | None = None
        self._file: h5py.File | None = None

    def __enter__(self) -> "RaggedWriter":
        with ExitStack() as stack:  # undone at once if anything below fails
            tmp = stack.enter_context(atomic_path(self.path))
            handle = stack.enter_context(h5py.File(tmp, "w", track_order=True))
            for name, spec in self.fields.items():
                chunks = (self.chunk_rows, *spec.row_shape)
                handle.create_dataset(name, shape=(0, *spec.row_shape), maxshape=(None, *spec.row_shape),
                                      dtype=spec.dtype, chunks=chunks, compression=self.compression,
                                      track_times=False)
            self._file = handle
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        if exc_type is not None:
            stack.__exit__(exc_type, exc, tb)  # close and delete the temporary; the error propagates
        else:
            with stack:  # closes the HDF5 file, then renames it onto self.path (or deletes it on error)
                self._finish()
        self._file = None

    def __len__(self) -> int:
        return len(self._ids)

    def append(self, image_id: str, width: int, height: int, **arrays: np.ndarray) -> None:
        """Add one image. Every field must be given, with the same number of rows."""
        if self._file is None:
            raise RuntimeError("RaggedWriter.append outside its `with` block")
        if not isinstance(image_id, str) or not image_id:
            raise ValueError(f"image ids must be non-empty strings, got {image_id!r}")
        if image_id in self._seen:
            raise ArtifactError(f"image id written twice to {self.path}", image_id=image_id)
        if int(width) < 1 or int(height) < 1:
            raise ArtifactError(f"image size must be positive, got {width}x{height}", image_id=image_id)
        if set(arrays) != set(self.fields):
            raise ValueError(f"image {image_id!r}: fields given {sorted(arrays)}, expected {sorted(self.fields)}")
        rows = None
        converted = {}
        for name, spec in self.fields.items():
            array = np.asarray(arrays[name], dtype=spec.dtype)
            if array.ndim == 0 or array.shape[1:] != spec.row_shape:
                raise ValueError(f"image {image_id!r}: field {name!r} has shape {array.shape}, "
                                 f"expected (rows, *{spec.row_shape})")
            if rows is not None and array.shape[0] != rows:
                raise ValueError(f"image {image_id!r}: fields have different row counts "
                                 f"({rows} and {array.shape[0]} in {name!r})")
            rows = array.shape[0]
            converted[name] = array
        self._seen.add(image_id)
        self._ids.append(image_id)
        self._widths.append(int(width))
        self._heights.append(int(height))
        self._offsets.append(self._offsets[-1] + rows)
        for name, array in converted.items():
            self._buffer[name].append(array)
        self._buffered_rows += rows
        if self._buffered_rows >= self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if self._buffered_rows == 0:
            return
        start, stop = self._written_rows, self._written_rows + self._buffered_rows
        for name, parts in self._buffer.items():
            dataset = self._file[name]
            dataset.resize(stop, axis=0)
            dataset[start:stop] = np.concatenate(parts, axis=0)
            parts.clear()
        self._written_rows = stop
        self._buffered_rows = 0

    def _finish(self) -> None:
        self._flush()
        f = self._file
        f.create_dataset("image_ids", data=np.array(self._ids, dtype=object),
                         dtype=h5py.string_dtype("utf-8"), track_times=False)
        f.create_dataset("offsets", data=np.asarray(self._offsets, dtype=np.int64), track_times=False)
        f.create_dataset("width", data=np.asarray(self._widths, dtype=np.int32), track_times=False)
        f.create_dataset("height", data=np.asarray(self._heights, dtype=np.int32), track_times=False)
        h = self.header
        f.attrs["format"] = h.format
        f.attrs["version"] = np.int64(h.version)
        f.attrs["dataset"] = h.dataset
        f.attrs["split"] = h.split
        f.attrs["box_convention"] = h.box_convention
        f.attrs.create("classes", np.array(list(h.classes), dtype=object), dtype=h5py.string_dtype("utf-8"))
        f.attrs["source"] = h.source
        f.attrs["parameters"] = json.dumps(dict(h.parameters), sort_keys=True)
        f.attrs["producer"] = h.producer
        f.attrs["fields"] = json.dumps(list(self.fields))


def write_ragged(path: str | Path, header: Header, fields: Mapping[str, FieldSpec],
                 records: Iterable[tuple[str, int, int, Mapping[str, np.ndarray]]], **writer_options: Any) -> int:
    """Write ``(image_id, width, height, {field: array})`` records; returns the number of images."""
    with RaggedWriter(path, header, fields, **writer_options) as writer:
        for image_id, width, height, arrays in records:
            writer.append(image_id, width, height, **arrays)
        return len(writer)


class RaggedFile:
    """Read-only view of a ragged HDF5 file with O(1) access by image id.

    Open with :meth:`open`, which checks ``format``, ``version`` and the box convention (and the
    dataset and split when given) and raises :class:`HDF5FormatError` naming the file otherwise.
    """

    def __init__(self, path: Path, handle: h5py.File, header: Header, fields: tuple[str, ...],
                 image_ids: tuple[str, ...], offsets: np.ndarray, widths: np.ndarray, heights: np.ndarray):
        self.path = path
        self.header = header
        self.fields = fields
        self.image_ids = image_ids
        self._file = handle
        self._datasets = {name: handle[name] for name in fields}
        self._offsets = offsets
        self._widths = widths
        self._heights = heights
        self._row = {image_id: i for i, image_id in enumerate(image_ids)}

    @classmethod
    def open(cls, path: str | Path, *, format: str, versions: Iterable[int], dataset: str | None = None,
             split: str | None = None) -> "RaggedFile":
        """Open and check ``path``: its ``format`` must equal ``format`` and its version be in ``versions``."""
        path = Path(path)
        if not path.is_file():
            raise HDF5FormatError(f"no such file; expected a {format} HDF5 file", path=path)
        try:
            handle = h5py.File(path, "r")
        except OSError as exc:
            raise HDF5FormatError(f"cannot open as HDF5 (not HDF5, or truncated): {exc}", path=path) from exc
        try:
            return cls._from_handle(path, handle, format, tuple(versions), dataset, split)
        except BaseException:
            handle.close()
            raise

    @classmethod
    def _from_handle(cls, path: Path, handle: h5py.File, expected_format: str, versions: tuple[int, ...],
                     dataset: str | None, split: str | None) -> "RaggedFile":
        attrs = handle.attrs
        missing = [name for name in _REQUIRED_ATTRS if name not in attrs]
        if missing:
            raise HDF5FormatError(f"missing attributes {missing}; not a wsjds {expected_format} file", path=path)
        found_format = _as_str(attrs["format"])
        if found_format != expected_format:
            raise HDF5FormatError(f"format is {found_format!r} but expected {expected_format!r}", path=path)
        version = int(attrs["version"])
        if version not in versions:
            raise HDF5FormatError(f"{expected_format} version {version} is not supported; this reader "
                                  f"reads versions {list(versions)} (rebuild the file)", path=path)
        convention = _as_str(attrs["box_convention"])
        if convention != BOX_CONVENTION:
            raise HDF5FormatError(f"box_convention is {convention!r} but expected {BOX_CONVENTION!r}", path=path)
        header = Header(
            format=found_format, version=version, dataset=_as_str(attrs["dataset"]),
            split=_as_str(attrs["split"]), source=_as_str(attrs["source"]),
            parameters=MappingProxyType(json.loads(_as_str(attrs["parameters"]))),
            classes=tuple(_as_str(c) for c in np.asarray(attrs["classes"]).ravel()),
            box_convention=convention, producer=_as_str(attrs["producer"]))
        if dataset is not None and header.dataset != dataset:
            raise HDF5FormatError(f"dataset is {header.dataset!r} but expected {dataset!r}", path=path)
        if split is not None and header.split != split:
            raise HDF5FormatError(f"split is {header.split!r} but expected {split!r}", path=path)
        fields = tuple(json.loads(_as_str(attrs["fields"])))
        absent = [name for name in (*_INDEX_DATASETS, *fields) if name not in handle]
        if absent:
            raise HDF5FormatError(f"datasets {absent} are missing (incomplete file)", path=path)
        image_ids = tuple(handle["image_ids"].asstr()[()].tolist())
        offsets = handle["offsets"][()].astype(np.int64)
        widths = handle["width"][()]
        heights = handle["height"][()]
        n = len(image_ids)
        if offsets.shape != (n + 1,) or widths.shape != (n,) or heights.shape != (n,):
            raise HDF5FormatError(f"index sizes disagree: {n} ids, {offsets.shape[0]} offsets (expected "
                                  f"{n + 1}), {widths.shape[0]} widths, {heights.shape[0]} heights", path=path)
        if n and (offsets[0] != 0 or np.any(np.diff(offsets) < 0)):
            raise HDF5FormatError("offsets must start at 0 and never decrease", path=path)
        for name in fields:
            rows = handle[name].shape[0]
            if rows != offsets[-1]:
                raise HDF5FormatError(f"field {name!r} has {rows} rows but the offsets end at {offsets[-1]}",
                                      path=path)
        if len(set(image_ids)) != n:
            raise HDF5FormatError("image ids are not unique", path=path)
        return cls(path, handle, header, fields, image_ids, offsets, widths, heights)

    def __enter__(self) -> "RaggedFile":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return len(self.image_ids)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._row

    def __iter__(self) -> Iterator[str]:
        return iter(self.image_ids)

    def __repr__(self) -> str:
        h = self.header
        return (f"<{type(self).__name__} {str(self.path)!r} {h.format} v{h.version} {h.dataset}/{h.split}: "
                f"{len(self)} images, fields {list(self.fields)}>")

    def read(self, image_id: str, fields: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Rows of one image: ``{field: array}`` with arrays of shape (K, ...)."""
        start, stop = self._span(image_id)
        names = self.fields if fields is None else tuple(fields)
        return {name: self._datasets[name][start:stop] for name in names}

    def field_specs(self) -> dict[str, FieldSpec]:
        """``{field: FieldSpec}`` as stored, in the file's field order (to write a file of the same layout)."""
        return {name: FieldSpec(ds.dtype, tuple(ds.shape[1:])) for name, ds in self._datasets.items()}

    @property
    def compression(self) -> str | None:
        """The fields' HDF5 compression filter (:class:`RaggedWriter` gives all fields the same)."""
        return next(iter(self._datasets.values())).compression

    def image_size(self, image_id: str) -> tuple[int, int]:
        """``(width, height)`` of one image as stored."""
        row = self._index(image_id)
        return int(self._widths[row]), int(self._heights[row])

    def num_rows(self, image_id: str) -> int:
        """How many rows (e.g. boxes) one image has."""
        start, stop = self._span(image_id)
        return stop - start

    def _index(self, image_id: str) -> int:
        try:
            return self._row[image_id]
        except KeyError:
            raise KeyError(f"image id {image_id!r} is not in {str(self.path)!r} "
                           f"({len(self)} images of {self.header.dataset}/{self.header.split})") from None

    def _span(self, image_id: str) -> tuple[int, int]:
        row = self._index(image_id)
        return int(self._offsets[row]), int(self._offsets[row + 1])


class TypedWriter:
    """Base of the typed writers (proposals, detections, masks, ...): holds a :class:`RaggedWriter`
    in ``_writer`` and forwards the context-manager protocol to it; subclasses define ``append``."""

    _writer: RaggedWriter

    def __enter__(self):
        self._writer.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._writer.__exit__(exc_type, exc, tb)

    def __len__(self) -> int:
        return len(self._writer)


class RaggedStore:
    """Base of the typed, read-only stores (proposals, detections, pseudo GT, ...): a
    :class:`RaggedFile` of one format, with O(1) access by image id. Subclasses set ``FORMAT`` and
    ``VERSIONS`` and define ``__getitem__``."""

    FORMAT: str = ""
    VERSIONS: tuple[int, ...] = ()

    def __init__(self, ragged: RaggedFile):
        self._ragged = ragged

    @classmethod
    def open(cls, path: str | Path, *, dataset: str | None = None, split: str | None = None):
        """Open and check a file; ``dataset`` / ``split``, when given, must match its attributes."""
        return cls(RaggedFile.open(path, format=cls.FORMAT, versions=cls.VERSIONS, dataset=dataset, split=split))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._ragged.close()

    def __len__(self) -> int:
        return len(self._ragged)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._ragged

    def __iter__(self) -> Iterator[str]:
        return iter(self._ragged)

    def __repr__(self) -> str:
        return repr(self._ragged).replace(type(self._ragged).__name__, type(self).__name__, 1)

    @property
    def path(self) -> Path:
        return self._ragged.path

    @property
    def header(self) -> Header:
        return self._ragged.header

    @property
    def parameters(self) -> Mapping[str, Any]:
        return self._ragged.header.parameters

    @property
    def classes(self) -> tuple[str, ...]:
        return self._ragged.header.classes

    @property
    def image_ids(self) -> tuple[str, ...]:
        return self._ragged.image_ids

    def image_size(self, image_id: str) -> tuple[int, int]:
        """``(width, height)`` of the image the rows belong to."""
        return self._ragged.image_size(image_id)

    def num_rows(self, image_id: str) -> int:
        return self._ragged.num_rows(image_id)

    def rows(self, image_id: str) -> dict[str, np.ndarray]:
        """Every field's rows of one image, untyped (``{field: (K, ...) array}``): what a merge copies."""
        return self._ragged.read(image_id)

    def check_rows(self, image_id: str, rows: Mapping[str, np.ndarray]) -> None:
        """Raise :class:`~wsjds.errors.ArtifactError` if one image's rows break the format's rules
        (what its writer checks); a merge calls it on every image it copies. The base accepts any rows."""

    @property
    def ragged_file(self) -> RaggedFile:
        return self._ragged


def _as_str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
