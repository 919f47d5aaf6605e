# Thin adapters from wildcards to the workflow helpers in wsjds.workflow (where the logic and its
# tests live).

from wsjds import workflow as wf
from wsjds.io import write_json


def dataset_input(wildcards):
    """Input standing for a dataset split; fails at DAG-build time when the data is missing."""
    return wf.dataset_input(config, wildcards.ds, wildcards.get("split"))


def dataset_root(wildcards):
    return wf.dataset_root(config, wildcards.ds)


def dataset_kind(wildcards):
    return config["datasets"][wildcards.ds]["kind"]


def generator_flags(wildcards):
    return wf.cli_flags(config["datasets"][wildcards.ds]["generator"])


def rule_resources(group):
    return config["resources"][group]


def train_proposals(wildcards):
    split = config["datasets"][wildcards.ds]["train_split"]
    return f"results/{wildcards.ds}/proposals/{split}.h5"


def previous_round(wildcards):
    """Round k-1's checkpoint (none for round 1); rounds past the configured count are an error."""
    k, last = int(wildcards.round), wf.round_count(config, wildcards.ds)
    if not 1 <= k <= last:
        raise ValueError(f"round {k} of {wildcards.ds}: training.rounds is {last}, so rounds run 1..{last}")
    return [] if k == 1 else f"results/{wildcards.ds}/{wildcards.method}/round{k - 1}.pt"


def resolved_train_settings(wildcards):
    return wf.train_settings(config, wildcards.ds, wildcards.method)


def all_round_scalars(wildcards):
    rounds = range(1, wf.round_count(config, wildcards.ds) + 1)
    return [f"results/{wildcards.ds}/{wildcards.method}/training/round{k}_scalars.csv" for k in rounds]


def final_checkpoint(wildcards):
    return wf.final_checkpoint(config, wildcards.ds, wildcards.method)


def inference_flags(wildcards):
    return wf.inference_flags(config, wildcards.ds)


def detection_shards(wildcards):
    n = wf.inference_shards(config, wildcards.ds)
    base = f"results/{wildcards.ds}/{wildcards.method}/detections/shards/{wildcards.split}"
    return [f"{base}.{i}-of-{n}.h5" for i in range(n)]


def pseudo_gt_scores(wildcards):
    split = config["datasets"][wildcards.ds]["train_split"]
    return f"results/{wildcards.ds}/{wildcards.method}/detections/{split}.h5"
