"""Atomic file output: a killed job never leaves a file (or directory) that looks complete, and the
temporaries a killed job left are removed when the output is written again."""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Works for files and directories. On an exception the temporary is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporaries (``.<name>.*.tmp``) that a killed writer of ``path`` left beside it.

    Safe because one output has one writer at a time: Snakemake runs one job per output, and
    that job is the one writing ``path`` again now.
    """
    path = Path(path)
    stale = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    for tmp in stale:
        log.info("removing %s, left by a killed writer of %s", tmp, path)
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return stale


def save_torch(path: str | Path, obj: Any) -> None:
    """``torch.save`` atomically, byte-stable: through a file handle, so the archive's inner folder is
    the fixed ``archive`` rather than the temporary's random name."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON (byte-stable for equal data), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
