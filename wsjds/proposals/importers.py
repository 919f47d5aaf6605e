"""Import precomputed proposals: MCG, Selective Search and EdgeBoxes ``.mat`` releases, Detectron pickles.

Formats (lessons-from-peers §3, ref §7):

* ``mcg``: a directory or tarball of per-image ``{id}.mat`` with ``boxes`` (K, 4), 1-based
  ``(y1, x1, y2, x2)``, and ``scores`` (K, 1) (FlickrVOC variants: ``bboxes`` / ``bboxes_scores``).
* ``ss-mat``: one ``.mat`` per split, ``boxes`` a cell of (K, 4) 1-based ``(y1, x1, y2, x2)``
  aligned to the split list; an ``images`` cell, if present, names the ids and is authoritative.
* ``edgeboxes-mat``: ``images``, ``boxes`` (as ``ss-mat``) and ``boxScores`` (WSDDN release).
* ``pkl``: ``{boxes: [(K, 4)], scores: [(K,)], indexes | ids: [...]}``, 0-based inclusive
  ``(x1, y1, x2, y2)``; ids int or str; Python 2 pickles read with latin1. Unpickled with a
  restricted unpickler: only numpy arrays and builtin containers, never code.

``.mat`` v5 is read with scipy, v7.3 (HDF5) with h5py. Every box is converted with
:mod:`wsjds.boxes` and then goes through :func:`wsjds.proposals.postprocess.postprocess`.
"""

from __future__ import annotations

import codecs
import collections
import hashlib
import io
import logging
import pickle
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Sequence

import h5py
import numpy as np
import scipy.io
from scipy.io.matlab import matfile_version
from tqdm import tqdm

from wsjds.boxes import from_matlab_yxyx, from_xyxy_inclusive
from wsjds.errors import DatasetError
from wsjds.proposals.dataset import ImageSource
from wsjds.image_ids import check_ids, format_ids
from wsjds.proposals.postprocess import ProposalPolicy, postprocess
from wsjds.proposals.store import ProposalWriter

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("mcg", "ss-mat", "edgeboxes-mat", "pkl")
# Variable names of the MCG boxes / scores: Berkeley release first, then the FlickrVOC variant.
_MCG_VARIABLES = (("boxes", "scores"), ("bboxes", "bboxes_scores"))
_HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class ImportedImage:
    """One image's proposals as read: ``boxes`` (K, 4) float32 in package convention, ``scores``
    (K,) float32 or None. ``id_from_order``: the file has no ids, so the id comes from the split
    list's order. ``path``: the file they came from (for errors)."""

    image_id: str
    boxes: np.ndarray
    scores: np.ndarray | None
    path: Path
    id_from_order: bool = False


class UnsafePickleError(DatasetError):
    """A pickle that references something other than numpy arrays and builtin containers."""


def import_proposals(fmt: str, path: str | Path, source: ImageSource, out: str | Path, *, dataset: str,
                     split: str, policy: ProposalPolicy, progress: bool = True) -> dict[str, float]:
    """Read ``path`` in format ``fmt``, post-process every image of ``source`` and write the store ``out``
    in split order. Returns ``images``, ``mean_raw_boxes`` and ``mean_boxes``."""
    path = Path(path)
    image_ids = source.ids
    kept: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    raw_total = 0
    for item in tqdm(read_proposals(fmt, path, image_ids, split=split), total=len(image_ids),
                     desc=f"import {fmt} {split}", file=sys.stderr, disable=not progress):
        width, height = source.image_size(item.image_id)
        if item.id_from_order:
            _check_inside(item, width, height)
        kept[item.image_id] = postprocess(item.boxes, item.scores, width, height, policy,
                                          image_id=item.image_id, path=item.path)
        raw_total += len(item.boxes)
    check_ids(kept, image_ids, path=path, split=split)
    parameters = {**policy.as_dict(), "format": fmt, "input": path.name,
                  "input_sha256": _sha256(path) if path.is_file() else None}
    with ProposalWriter(out, dataset=dataset, split=split, source=f"import:{fmt}", parameters=parameters) as writer:
        for image_id in image_ids:
            width, height = source.image_size(image_id)
            writer.append(image_id, width, height, *kept[image_id])
    n = max(1, len(image_ids))
    stats = {"images": len(image_ids), "mean_raw_boxes": raw_total / n,
             "mean_boxes": sum(len(b) for b, _ in kept.values()) / n}
    log.info("imported %s proposals of %d images from %s: %.0f raw / %.0f kept boxes per image",
             fmt, len(image_ids), path, stats["mean_raw_boxes"], stats["mean_boxes"])
    return stats


def read_proposals(fmt: str, path: str | Path, image_ids: Sequence[str], *, split: str) -> Iterator[ImportedImage]:
    """Yield the proposals of every id of ``image_ids`` from ``path`` (unfiltered, package convention).

    Ids are checked against the split and the errors name the ids that disagree. The order of
    the items is the source's (split order except for tarballs, which are read front to back).
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"proposal input does not exist (format {fmt})", path=path)
    readers = {"mcg": _read_mcg, "ss-mat": _read_ss_mat, "edgeboxes-mat": _read_edgeboxes_mat, "pkl": _read_pkl}
    if fmt not in readers:
        raise ValueError(f"unknown proposal format {fmt!r}; expected one of {list(FORMATS)}")
    return readers[fmt](path, tuple(image_ids), split)


def load_pickle(path: str | Path) -> Any:
    """Unpickle a data-only file: numpy arrays, numpy scalars and builtin containers; anything else
    (a function, a class, ``os.system``) raises :class:`UnsafePickleError` before it is called."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return _RestrictedUnpickler(f, encoding="latin1").load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(str(exc), path=path) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DatasetError(f"cannot unpickle ({type(exc).__name__}: {exc})", path=path) from exc


def load_mat(source: str | Path | BinaryIO, variables: Sequence[str], *, name: str | Path) -> dict[str, Any]:
    """Read the named variables of a MATLAB ``.mat`` (v5 or v7.3) that exist in it.

    Numeric arrays keep MATLAB's shape (v7.3's transposed storage is undone), cell arrays become
    object arrays, char arrays become ``str``. ``name`` is the file named in errors.
    """
    opened = None
    if isinstance(source, (str, Path)):
        opened = source = open(source, "rb")
    try:
        try:
            major, _ = matfile_version(source)
        except Exception as exc:  # scipy raises several types for non-MAT input
            raise DatasetError(f"not a MATLAB .mat file ({exc})", path=name) from exc
        source.seek(0)
        if major == 2:
            return _load_mat73(source, variables, name)
        try:
            return scipy.io.loadmat(source, variable_names=list(variables), chars_as_strings=True)
        except Exception as exc:
            raise DatasetError(f"cannot read MATLAB v5 file ({exc})", path=name) from exc
    finally:
        if opened is not None:
            opened.close()


# --- per-format readers ------------------------------------------------------------------------


def _read_mcg(path: Path, image_ids: tuple[str, ...], split: str) -> Iterator[ImportedImage]:
    wanted = set(image_ids)
    if path.is_dir():
        files: dict[str, Path] = {}
        duplicated = []
        for mat in sorted(path.rglob("*.mat")):
            if mat.stem in wanted:
                if mat.stem in files:
                    duplicated.append(mat.stem)
                files[mat.stem] = mat
        _check_mcg_ids(path, image_ids, files, duplicated, split)
        for image_id in image_ids:
            with files[image_id].open("rb") as f:
                yield _mcg_image(f, image_id, files[image_id])
        return
    if not tarfile.is_tarfile(path):
        raise DatasetError("MCG input must be a directory or a tar archive (.tgz / .tar) of per-image .mat files",
                           path=path)
    found: dict[str, Path] = {}
    duplicated = []
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            stem = Path(member.name).stem
            if not (member.isfile() and member.name.endswith(".mat") and stem in wanted):
                continue
            if stem in found:
                duplicated.append(stem)
                continue
            found[stem] = Path(member.name)
            data = archive.extractfile(member).read()
            yield _mcg_image(io.BytesIO(data), stem, path / member.name)
    _check_mcg_ids(path, image_ids, found, duplicated, split)


def _check_mcg_ids(path: Path, image_ids: Sequence[str], found: dict[str, Path], duplicated: list[str],
                   split: str) -> None:
    missing = [i for i in image_ids if i not in found]
    if missing or duplicated:
        parts = [f"no {{id}}.mat for {format_ids(missing)}"] if missing else []
        parts += [f"more than one file for {format_ids(sorted(set(duplicated)))}"] if duplicated else []
        raise DatasetError(f"MCG files disagree with split {split!r} ({len(image_ids)} ids): " + "; ".join(parts),
                           path=path)


def _mcg_image(f: BinaryIO, image_id: str, name: Path) -> ImportedImage:
    wanted = [v for pair in _MCG_VARIABLES for v in pair]
    data = load_mat(f, wanted, name=name)
    for boxes_key, scores_key in _MCG_VARIABLES:
        if boxes_key in data:
            boxes = _box_matrix(data[boxes_key], name, image_id, f"variable {boxes_key!r}")
            scores = _score_vector(data[scores_key], len(boxes), name, image_id, scores_key) if scores_key in data else None
            return ImportedImage(image_id, from_matlab_yxyx(boxes), scores, Path(name))
    raise DatasetError("no 'boxes' (or 'bboxes') variable in the MCG file", path=name, image_id=image_id)


def _read_ss_mat(path: Path, image_ids: tuple[str, ...], split: str) -> Iterator[ImportedImage]:
    data = load_mat(path, ["boxes", "images"], name=path)
    boxes = _cell(data, "boxes", path)
    if "images" in data:
        names = _mat_strings(data["images"], path, "images")
        if len(names) != len(boxes):
            raise DatasetError(f"'images' has {len(names)} entries but 'boxes' has {len(boxes)}", path=path)
        yield from _by_name(path, image_ids, split, names, boxes, None)
        return
    if len(boxes) != len(image_ids):
        raise DatasetError(f"'boxes' has {len(boxes)} entries but split {split!r} has {len(image_ids)} images; "
                           "the file has no 'images' field, so entries are matched to the split list by order "
                           "and the counts must agree", path=path)
    for k, (image_id, cell) in enumerate(zip(image_ids, boxes)):
        matrix = _box_matrix(cell, path, image_id, f"boxes{{{k + 1}}}")
        yield ImportedImage(image_id, from_matlab_yxyx(matrix), None, path, id_from_order=True)


def _read_edgeboxes_mat(path: Path, image_ids: tuple[str, ...], split: str) -> Iterator[ImportedImage]:
    data = load_mat(path, ["images", "boxes", "boxScores"], name=path)
    names = _mat_strings(_require(data, "images", path), path, "images")
    boxes = _cell(data, "boxes", path)
    scores = _cell(data, "boxScores", path)
    if not len(names) == len(boxes) == len(scores):
        raise DatasetError(f"'images', 'boxes' and 'boxScores' have {len(names)}, {len(boxes)} and "
                           f"{len(scores)} entries; expected equal", path=path)
    yield from _by_name(path, image_ids, split, names, boxes, scores)


def _by_name(path: Path, image_ids: tuple[str, ...], split: str, names: list[str], boxes: list[Any],
             scores: list[Any] | None) -> Iterator[ImportedImage]:
    """Items of a file whose ``images`` field names the ids, yielded in split order."""
    check_ids(names, image_ids, path=path, split=split)
    position = {name: k for k, name in enumerate(names)}
    for image_id in image_ids:
        k = position[image_id]
        matrix = _box_matrix(boxes[k], path, image_id, f"boxes{{{k + 1}}}")
        score = None if scores is None else _score_vector(scores[k], len(matrix), path, image_id, f"boxScores{{{k + 1}}}")
        yield ImportedImage(image_id, from_matlab_yxyx(matrix), score, path)


def _read_pkl(path: Path, image_ids: tuple[str, ...], split: str) -> Iterator[ImportedImage]:
    data = load_pickle(path)
    if not isinstance(data, dict):
        raise DatasetError(f"expected a dict with boxes, scores and indexes (or ids), found {type(data).__name__}",
                           path=path)
    id_key = "indexes" if "indexes" in data else "ids"
    raw_boxes = _require(data, "boxes", path)
    raw_ids = _require(data, id_key, path, also="'indexes' or 'ids'")
    raw_scores = data.get("scores")
    lengths = {"boxes": len(raw_boxes), id_key: len(raw_ids)}
    if raw_scores is not None:
        lengths["scores"] = len(raw_scores)
    if len(set(lengths.values())) != 1:
        raise DatasetError(f"list lengths disagree: {lengths}", path=path)
    ids = _pickle_ids(raw_ids, image_ids, path)
    check_ids(ids, image_ids, path=path, split=split)
    position = {image_id: k for k, image_id in enumerate(ids)}
    for image_id in image_ids:
        k = position[image_id]
        matrix = _box_matrix(raw_boxes[k], path, image_id, f"boxes[{k}]")
        score = None if raw_scores is None else _score_vector(raw_scores[k], len(matrix), path, image_id, f"scores[{k}]")
        yield ImportedImage(image_id, from_xyxy_inclusive(matrix), score, path)


# --- helpers -----------------------------------------------------------------------------------


def _pickle_ids(raw_ids: Sequence[Any], image_ids: Sequence[str], path: Path) -> list[str]:
    """Pickle ids -> split ids: strings as they are, integers matched to numeric ids (5 -> '000005')."""
    numeric: dict[int, str] = {}
    for image_id in image_ids:
        if image_id.isdigit():
            if int(image_id) in numeric:
                raise DatasetError(f"the pickle has integer ids, but split ids {numeric[int(image_id)]!r} and "
                                   f"{image_id!r} are the same number", path=path)
            numeric[int(image_id)] = image_id
    out = []
    for raw in raw_ids:
        if isinstance(raw, bytes):
            raw = raw.decode("latin1")
        if isinstance(raw, (int, np.integer)) and not isinstance(raw, bool):
            out.append(numeric.get(int(raw), str(int(raw))))
        elif isinstance(raw, str):
            out.append(raw)
        else:
            raise DatasetError(f"image ids must be int or str, found {type(raw).__name__} ({raw!r})", path=path)
    return out


def _box_matrix(value: Any, path: str | Path, image_id: str, what: str) -> np.ndarray:
    """A (K, 4) float64 matrix, or (0, 4) for an empty one."""
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{what}: expected a numeric K x 4 matrix ({exc})", path=path, image_id=image_id) from exc
    if matrix.size == 0:
        return np.zeros((0, 4))
    if matrix.ndim != 2 or matrix.shape[1] != 4:
        raise DatasetError(f"{what}: expected a K x 4 box matrix, found shape {matrix.shape}",
                           path=path, image_id=image_id)
    return matrix


def _score_vector(value: Any, count: int, path: str | Path, image_id: str, what: str) -> np.ndarray:
    scores = np.asarray(value, dtype=np.float64).reshape(-1)
    if scores.shape[0] != count:
        raise DatasetError(f"{what}: {scores.shape[0]} scores for {count} boxes", path=path, image_id=image_id)
    return scores.astype(np.float32)


def _cell(data: dict[str, Any], key: str, path: Path) -> list[Any]:
    """A MATLAB cell array as a list, in MATLAB's (column-major) element order."""
    value = _require(data, key, path)
    if not (isinstance(value, np.ndarray) and value.dtype == object):
        raise DatasetError(f"variable {key!r} must be a cell array (one entry per image), found "
                           f"{getattr(value, 'dtype', type(value).__name__)} of shape {np.shape(value)}", path=path)
    return list(value.ravel(order="F"))


def _mat_strings(value: Any, path: Path, key: str) -> list[str]:
    """Image names from a cell of strings or a char matrix."""
    if isinstance(value, str):
        return [value]
    array = np.asarray(value)
    out = []
    for item in array.ravel(order="F"):
        if isinstance(item, np.ndarray):
            flat = item.ravel()
            if flat.size != 1:
                raise DatasetError(f"variable {key!r}: expected one string per entry, found {item!r}", path=path)
            item = flat[0]
        if isinstance(item, (str, np.str_)):
            out.append(str(item).strip())
        elif isinstance(item, (int, float, np.integer, np.floating)) and float(item).is_integer():
            out.append(str(int(item)))
        else:
            raise DatasetError(f"variable {key!r}: expected image names, found {item!r}", path=path)
    return out


def _require(data: dict[str, Any], key: str, path: Path, also: str | None = None) -> Any:
    if key not in data:
        found = sorted(k for k in data if not str(k).startswith("__"))
        raise DatasetError(f"expected a variable {also or repr(key)}, found {found}", path=path)
    return data[key]


def _check_inside(item: ImportedImage, width: int, height: int) -> None:
    """For files matched to the split by order: a box outside the image means the order is wrong."""
    b = item.boxes
    outside = (b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > width) | (b[:, 3] > height)
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        raise DatasetError(f"box {k} {b[k].tolist()} lies outside the {width}x{height} image; this file has no "
                           "'images' field, so its entries are matched to the split list by order, and that "
                           "order does not fit the images", path=item.path, image_id=item.image_id)


def _load_mat73(f: BinaryIO, variables: Sequence[str], name: str | Path) -> dict[str, Any]:
    try:
        handle = h5py.File(f, "r")
    except OSError as exc:
        raise DatasetError(f"cannot read MATLAB v7.3 (HDF5) file ({exc})", path=name) from exc
    with handle:
        return {key: _h5_value(handle, handle[key], name) for key in variables if key in handle}


def _h5_value(handle: h5py.File, node: Any, name: str | Path) -> Any:
    """A MATLAB v7.3 variable -> numpy (MATLAB shape), object array (cell) or str (char)."""
    if not isinstance(node, h5py.Dataset):
        raise DatasetError(f"variable {node.name!r} is a struct or object; expected a matrix, cell or char array",
                           path=name)
    matlab_class = node.attrs.get("MATLAB_class", b"")
    matlab_class = matlab_class.decode() if isinstance(matlab_class, bytes) else str(matlab_class)
    if node.attrs.get("MATLAB_empty", 0):
        return np.empty((0, 0), dtype=object if matlab_class == "cell" else np.float64)
    data = node[()]
    if h5py.check_dtype(ref=node.dtype) is h5py.Reference:
        out = np.empty(data.shape, dtype=object)
        for index in np.ndindex(data.shape):
            out[index] = _h5_value(handle, handle[data[index]], name)
        return out.T
    matrix = np.asarray(data).T
    if matlab_class == "char":
        rows = ["".join(map(chr, row)) for row in np.atleast_2d(matrix)]
        return rows[0] if len(rows) == 1 else np.array(rows, dtype=object)
    return matrix


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) pairs a proposal pickle may reference, for Python 2 and 3 and numpy 1 and 2."""
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric

    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                           ("_codecs", "encode"): codecs.encode,
                                           ("collections", "OrderedDict"): collections.OrderedDict}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    for module in ("builtins", "__builtin__"):
        for container in (set, frozenset, list, dict, tuple):
            allowed[(module, container.__name__)] = container
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of :func:`_allowed_globals`; refuses everything else unexecuted."""

    _ALLOWED: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if _RestrictedUnpickler._ALLOWED is None:
            _RestrictedUnpickler._ALLOWED = _allowed_globals()
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused to unpickle: the file references {module}.{name}, which is neither a numpy array "
                "nor a builtin container (a proposal file is data, not code)") from None
