"""Checks that a file holds exactly a split's image ids, with errors that name the ids."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from wsjds.errors import DatasetError

# How many ids an error message lists before it says "... and N more".
_IDS_SHOWN = 10


def check_ids(found: Iterable[str], expected: Sequence[str], *, path: str | Path | None, split: str) -> None:
    """The ids ``found`` in a file must be exactly the split's ids, each once. Raises DatasetError
    naming the missing, unexpected and duplicated ids otherwise (order is not checked here)."""
    found = list(found)
    expected_set = set(expected)
    seen: set[str] = set()
    duplicated = []
    for image_id in found:
        if image_id in seen:
            duplicated.append(image_id)
        seen.add(image_id)
    missing = [i for i in expected if i not in seen]
    unexpected = [i for i in found if i not in expected_set]
    if not (missing or unexpected or duplicated):
        return
    parts = []
    for label, ids in (("missing", missing), ("not in the split", unexpected), ("duplicated", duplicated)):
        if ids:
            parts.append(f"{label}: {format_ids(ids)}")
    raise DatasetError(f"image ids disagree with split {split!r} ({len(expected)} ids; file has "
                       f"{len(found)}): " + "; ".join(parts), path=path)


def format_ids(ids: Sequence[str]) -> str:
    """``['a', 'b'] and 3 more`` for error messages."""
    shown = ", ".join(repr(i) for i in ids[:_IDS_SHOWN])
    more = f" and {len(ids) - _IDS_SHOWN} more" if len(ids) > _IDS_SHOWN else ""
    return f"[{shown}]{more} ({len(ids)})"
