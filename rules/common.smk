# Helpers shared by every rule file: dataset lookup, fail-fast checks, config -> CLI flags.

import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError

from wsjds.data.sources import missing_dataset_message, required_path

DATASETS = config["datasets"]
SYNTHETIC_DATASETS = [name for name, d in DATASETS.items() if d["kind"] == "synthetic"]
VOC_LAYOUT_DATASETS = [name for name, d in DATASETS.items() if d["kind"] in ("synthetic", "voc")]

if config["default_dataset"] not in DATASETS:
    raise WorkflowError(
        f"default_dataset {config['default_dataset']!r} is not among datasets: {sorted(DATASETS)}"
    )


wildcard_constraints:
    ds="|".join(DATASETS),
    split=r"[A-Za-z0-9_]+",


def dataset_kind(ds):
    return DATASETS[ds]["kind"]


def dataset_root(ds):
    """Root directory of a dataset: generated for synthetic ones, from config otherwise."""
    if dataset_kind(ds) == "synthetic":
        return f"results/{ds}/dataset"
    return DATASETS[ds]["root"]


def dataset_input(wildcards):
    """Input that stands for a dataset split. Fails at DAG-build time when the data is missing."""
    ds = wildcards.ds
    if dataset_kind(ds) == "synthetic":
        return rules.synth_dataset.output[0].format(ds=ds)
    cfg = DATASETS[ds]
    split = getattr(wildcards, "split", cfg["train_split"])
    path = required_path(cfg["kind"], cfg["root"], split)
    if not path.is_file():
        raise WorkflowError(
            missing_dataset_message(ds, cfg["kind"], cfg["root"], split, cfg.get("year"))
        )
    return str(path)


def cli_flags(options):
    """{"num_test": 80, "object_size": [0.2, 0.5]} -> "--num-test 80 --object-size 0.2 0.5"."""
    parts = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            parts.append(" ".join([flag] + [shlex.quote(str(v)) for v in value]))
        else:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)


def rule_resources(group):
    return config["resources"][group]


def default_targets():
    """What `snakemake --cores N` builds: every stage that exists, for the default dataset."""
    ds = config["default_dataset"]
    cfg = DATASETS[ds]
    splits = [cfg["train_split"], cfg["test_split"]]
    return [f"results/{ds}/dataset_summary/{split}.json" for split in splits]
