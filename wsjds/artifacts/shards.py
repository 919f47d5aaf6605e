"""Sharding a split's image list so Snakemake can run the pieces side by side, then merge them."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm

from wsjds.errors import ArtifactError
from wsjds.artifacts.hdf5 import Header, RaggedStore, RaggedWriter
from wsjds.image_ids import check_ids

log = logging.getLogger(__name__)

Store = TypeVar("Store", bound=RaggedStore)
# check_image(shard, image_id, rows): raise to reject an image's rows during a merge.
ImageCheck = Callable[[RaggedStore, str, Mapping[str, np.ndarray]], None]


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


def merge_shards(store_type: type[Store], shards: Sequence[str | Path], out: str | Path,
                 expected_ids: Sequence[str], *, dataset: str, split: str, shard_parameters: Collection[str] = (),
                 check_image: ImageCheck | None = None, progress: bool = False) -> int:
    """Join shard files of one store type into one file of the whole split, in ``expected_ids`` order.

    Every expected id must be in exactly one shard and no other id may appear; the shards must agree
    on source, classes and parameters, apart from ``shard_parameters`` (dropped from the merged
    header). The merged file keeps the shards' fields, dtypes and compression; each image's rows are
    re-validated by the store's ``check_rows`` and by ``check_image`` when given. Returns the number
    of images.
    """
    if not shards:
        raise ValueError("a merge needs at least one shard")
    with ExitStack() as stack:
        stores = [stack.enter_context(store_type.open(p, dataset=dataset, split=split)) for p in shards]
        first = stores[0]
        parameters = _without(first.parameters, shard_parameters)
        for store in stores[1:]:
            _check_agrees(store, first, parameters, shard_parameters)
        owner: dict[str, RaggedStore] = {}
        found: list[str] = []
        for store in stores:
            found += store.image_ids
            owner.update((image_id, store) for image_id in store.image_ids)
        check_ids(found, expected_ids, path=", ".join(map(str, shards)), split=split)
        header = Header(format=first.header.format, version=first.header.version, dataset=dataset, split=split,
                        source=first.header.source, parameters=parameters, classes=first.classes)
        layout = first.ragged_file
        with RaggedWriter(out, header, layout.field_specs(), compression=layout.compression) as writer:
            for image_id in tqdm(expected_ids, desc=f"merge {split}", unit="img", file=sys.stderr,
                                 disable=not progress):
                store = owner[image_id]
                rows = store.rows(image_id)
                store.check_rows(image_id, rows)
                if check_image is not None:
                    check_image(store, image_id, rows)
                writer.append(image_id, *store.image_size(image_id), **rows)
    log.info("merged %d %s shards into %s (%d images)", len(shards), first.header.format, out, len(expected_ids))
    return len(expected_ids)


def _check_agrees(store: RaggedStore, first: RaggedStore, parameters: Mapping[str, Any],
                  shard_parameters: Collection[str]) -> None:
    mine = _without(store.parameters, shard_parameters)
    for what, value, expected in (("source", store.header.source, first.header.source),
                                  ("classes", store.classes, first.classes), ("parameters", mine, parameters),
                                  ("fields", store.ragged_file.field_specs(), first.ragged_file.field_specs())):
        if value != expected:
            raise ArtifactError(f"shard {what} {value!r} differ from {expected!r} in {str(first.path)!r}; "
                                "rebuild the shards with one configuration", path=store.path)


def _without(parameters: Mapping[str, Any], names: Collection[str]) -> dict[str, Any]:
    return {k: v for k, v in parameters.items() if k not in names}
