"""Workflow helpers called from the Snakefile: dataset lookup, fail-fast checks, config -> CLI flags.

They live in the package (not in rules/*.smk) so they are importable and unit-tested, and the rule
files stay thin.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from wsjds.data.sources import missing_dataset_message, required_path


class MissingDatasetError(FileNotFoundError):
    """A configured dataset is not on disk; the message says where it should be and what to do."""


def datasets_of_kind(config: Mapping, *kinds: str) -> list[str]:
    """Names of the configured datasets whose ``kind`` is one of ``kinds``."""
    return [name for name, d in config["datasets"].items() if d["kind"] in kinds]


def dataset_root(config: Mapping, ds: str) -> str:
    """Root directory of a dataset: generated under results/ for synthetic ones, from config otherwise."""
    cfg = config["datasets"][ds]
    return f"results/{ds}/dataset" if cfg["kind"] == "synthetic" else cfg["root"]


def dataset_input(config: Mapping, ds: str, split: str | None = None) -> str:
    """The file that stands for a dataset split in a rule's input.

    For a synthetic dataset that is the generator's output directory; for VOC/COCO it is a file the
    data must contain, and its absence raises :class:`MissingDatasetError` while Snakemake builds
    the DAG, before any job runs.
    """
    cfg = config["datasets"][ds]
    if cfg["kind"] == "synthetic":
        return dataset_root(config, ds)
    split = split or cfg["train_split"]
    path = required_path(cfg["kind"], cfg["root"], split)
    if not path.is_file():
        raise MissingDatasetError(missing_dataset_message(ds, cfg["kind"], cfg["root"], split, cfg.get("year")))
    return str(path)


def cli_flags(options: Mapping) -> str:
    """``{"num_test": 80, "object_size": [0.2, 0.5]}`` -> ``--num-test 80 --object-size 0.2 0.5``."""
    parts = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif isinstance(value, (list, tuple)):
            parts.append(" ".join([flag, *(shlex.quote(str(v)) for v in value)]))
        else:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)


def default_targets(config: Mapping) -> list[str]:
    """What ``snakemake --cores N`` builds: every stage that exists, for the default dataset."""
    ds = config["default_dataset"]
    if ds not in config["datasets"]:
        raise ValueError(f"default_dataset {ds!r} is not among datasets: {sorted(config['datasets'])}")
    cfg = config["datasets"][ds]
    splits = (cfg["train_split"], cfg["test_split"])
    return [f"results/{ds}/dataset_summary/{split}.json" for split in splits]
