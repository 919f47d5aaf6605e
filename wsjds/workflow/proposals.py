"""Config ``proposals`` -> what rules/proposals.smk needs: per-dataset settings, a split's policy, shard paths.

A dataset may override any key of the top-level ``proposals`` section under
``datasets.<name>.proposals``; nested sections (``selective_search``) merge key by key.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from wsjds.workflow import paths

SELECTIVE_SEARCH = "selective_search"
_POLICY_KEYS = ("min_side", "whole_image_fallback")


def proposal_settings(config: Mapping, ds: str) -> dict[str, Any]:
    """The effective ``proposals`` settings of dataset ``ds`` (top level, then the dataset's override)."""
    merged = copy.deepcopy(dict(config["proposals"]))
    for key, value in config["datasets"][ds].get("proposals", {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def datasets_with_source(config: Mapping, datasets: list[str], computed: bool) -> list[str]:
    """Which of ``datasets`` compute Selective Search (``computed``) or import proposals (not ``computed``)."""
    return [ds for ds in datasets if (proposal_settings(config, ds)["source"] == SELECTIVE_SEARCH) == computed]


def shard_paths(config: Mapping, ds: str, split: str) -> list[str]:
    """The temporary shard stores that make up ``results/{ds}/proposals/{split}.h5``."""
    count = proposal_settings(config, ds)["shards"]
    return [paths.proposal_shard(ds, split, index, count) for index in range(count)]


def max_per_image(config: Mapping, ds: str, split: str) -> int:
    """The cap for ``split``: the training value for the dataset's train split, the test value otherwise."""
    settings = proposal_settings(config, ds)
    is_train = split == config["datasets"][ds]["train_split"]
    return settings["max_per_image_train" if is_train else "max_per_image_test"]


def policy(config: Mapping, ds: str, split: str) -> dict[str, Any]:
    """The post-processing of ``split``'s proposals: ``{min_side, whole_image_fallback, max_per_image}``."""
    settings = proposal_settings(config, ds)
    return {**{key: settings[key] for key in _POLICY_KEYS}, "max_per_image": max_per_image(config, ds, split)}


def import_spec(config: Mapping, ds: str, split: str) -> tuple[str, str]:
    """``(format, path)`` of an imported source, ``{split}`` in the path filled in."""
    source = proposal_settings(config, ds)["source"]
    if not isinstance(source, Mapping):
        raise ValueError(f"dataset {ds!r} computes its proposals ({source!r}); it has no import spec")
    return source["format"], source["path"].format(split=split, ds=ds)

