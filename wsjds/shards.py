"""Sharding a split's image list so Snakemake can run the pieces side by side, then merge them."""

from __future__ import annotations

from collections.abc import Sequence


def shard_ids(image_ids: Sequence[str], index: int, count: int) -> tuple[str, ...]:
    """Contiguous block ``index`` (0-based) of ``count`` nearly equal blocks of ``image_ids``."""
    if not 0 <= index < count:
        raise ValueError(f"shard index must be in [0, {count}), got {index}")
    n = len(image_ids)
    return tuple(image_ids[index * n // count:(index + 1) * n // count])


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` -> ``(2, 8)``: shard 2 (0-based) of 8."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like INDEX/COUNT (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {text!r}: need COUNT >= 1 and 0 <= INDEX < COUNT")
    return index, count
