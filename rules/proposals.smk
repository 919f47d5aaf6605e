# Proposals stage: results/{ds}/proposals/{split}.h5 for every VOC-layout dataset.
#
# source: selective_search -> `proposals.shards` Selective Search jobs per split (temporary shard
# stores, run side by side by `--cores N` or a cluster), then one merge that checks every id of
# the split is present exactly once. An import spec -> one `wsjds proposals import` job.
# Each job reads results/{ds}/proposals/{split}_settings.json (rule proposal_settings: config
# `proposals`, overridden per dataset, wsjds.workflow.proposals). Both
# wait for the split's cheap check (rule dataset_summary), so every later stage does too.

from wsjds.workflow import proposals as proposal_cfg

PROPOSAL_COMPUTED_DATASETS = proposal_cfg.datasets_with_source(config, TRAINABLE_DATASETS, computed=True)
PROPOSAL_IMPORTED_DATASETS = proposal_cfg.datasets_with_source(config, TRAINABLE_DATASETS, computed=False)


rule proposal_settings:
    output:
        paths.proposal_settings("{ds}", "{split}"),
    params:
        settings=lambda wildcards: wf.proposal_job_settings(config, wildcards.ds, wildcards.split),
    log:
        "logs/{ds}/proposal_settings_{split}.log",
    wildcard_constraints:
        ds="|".join(TRAINABLE_DATASETS),
    localrule: True
    run:
        write_json(output[0], params.settings)


rule proposals_compute_shard:
    input:
        dataset_input,
        settings=paths.proposal_settings("{ds}", "{split}"),
        checked=paths.dataset_summary("{ds}", "{split}"),
    output:
        temp(paths.proposal_shard("{ds}", "{split}", "{shard}", "{nshards}")),
    log:
        "logs/{ds}/proposals_compute_{split}.{shard}-of-{nshards}.log",
    benchmark:
        "results/{ds}/benchmarks/proposals_compute_{split}.{shard}-of-{nshards}.tsv"
    wildcard_constraints:
        ds="|".join(PROPOSAL_COMPUTED_DATASETS) or "no_computed_dataset",
        shard=r"\d+",
        nshards=r"\d+",
    threads: rule_resources("proposals")["threads"]
    resources:
        mem_mb=rule_resources("proposals")["mem_mb"],
        runtime=rule_resources("proposals")["runtime"],
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds proposals compute --settings {input.settings} --shard {wildcards.shard}/{wildcards.nshards}"
        " --threads {threads} --no-progress --out {output} > {log} 2>&1"


rule proposals_merge:
    input:
        dataset=dataset_input,
        settings=paths.proposal_settings("{ds}", "{split}"),
        shards=lambda wildcards: proposal_cfg.shard_paths(config, wildcards.ds, wildcards.split),
    output:
        paths.proposals("{ds}", "{split}"),
    log:
        "logs/{ds}/proposals_merge_{split}.log",
    benchmark:
        "results/{ds}/benchmarks/proposals_merge_{split}.tsv"
    wildcard_constraints:
        ds="|".join(PROPOSAL_COMPUTED_DATASETS) or "no_computed_dataset",
    threads: rule_resources("proposals")["threads"]
    resources:
        mem_mb=rule_resources("proposals")["mem_mb"],
        runtime=rule_resources("proposals")["runtime"],
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds proposals merge --settings {input.settings} --no-progress --out {output} {input.shards}"
        " > {log} 2>&1"


rule proposals_import:
    input:
        dataset=dataset_input,
        settings=paths.proposal_settings("{ds}", "{split}"),
        checked=paths.dataset_summary("{ds}", "{split}"),
        proposals=lambda wildcards: proposal_cfg.import_spec(config, wildcards.ds, wildcards.split)[1],
    output:
        paths.proposals("{ds}", "{split}"),
    log:
        "logs/{ds}/proposals_import_{split}.log",
    benchmark:
        "results/{ds}/benchmarks/proposals_import_{split}.tsv"
    wildcard_constraints:
        ds="|".join(PROPOSAL_IMPORTED_DATASETS) or "no_imported_dataset",
    threads: rule_resources("proposals")["threads"]
    resources:
        mem_mb=rule_resources("proposals")["mem_mb"],
        runtime=rule_resources("proposals")["runtime"],
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds proposals import --settings {input.settings} --input {input.proposals}"
        " --no-progress --out {output} > {log} 2>&1"
