# Thin adapters from wildcards to the workflow helpers in wsjds.workflow (where the logic and its
# tests live).

from wsjds import workflow as wf


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
