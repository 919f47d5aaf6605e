# Data stage: generate the synthetic dataset; check a tags dataset (your images + a CSV of tags) into
# its normalised root; summarise and validate any split. The summary is the split's cheap check
# (ids, XML parse, image headers): the proposal rules take it as input, so a broken split fails in
# seconds, before any heavy job.


rule dataset_settings:
    output:
        paths.dataset_settings("{ds}"),
    params:
        settings=lambda wildcards: wf.dataset_settings(config, wildcards.ds),
    log:
        "logs/{ds}/dataset_settings.log",
    wildcard_constraints:
        ds="|".join(SYNTHETIC_DATASETS + TAGS_DATASETS) or "no_generated_dataset",
    localrule: True
    run:
        write_json(output[0], params.settings)


rule synth_dataset:
    input:
        settings=paths.dataset_settings("{ds}"),
    output:
        directory(paths.dataset_dir("{ds}")),
    log:
        "logs/{ds}/synth_dataset.log",
    benchmark:
        "results/{ds}/benchmarks/synth_dataset.tsv"
    wildcard_constraints:
        ds="|".join(SYNTHETIC_DATASETS) or "no_synthetic_dataset",
    threads: rule_resources("data")["threads"]
    resources:
        mem_mb=rule_resources("data")["mem_mb"],
        runtime=rule_resources("data")["runtime"],
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds synth --settings {input.settings} --out {output} > {log} 2>&1"


rule tags_dataset:
    input:
        unpack(lambda wildcards: wf.tags_inputs(config, wildcards.ds)),
        settings=paths.dataset_settings("{ds}"),
    output:
        directory(paths.dataset_dir("{ds}")),
    log:
        "logs/{ds}/tags_dataset.log",
    benchmark:
        "results/{ds}/benchmarks/tags_dataset.tsv"
    wildcard_constraints:
        ds="|".join(TAGS_DATASETS) or "no_tags_dataset",
    threads: rule_resources("data")["threads"]
    resources:
        mem_mb=rule_resources("data")["mem_mb"],
        runtime=rule_resources("data")["runtime"],
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds data tags --settings {input.settings} --out {output} > {log} 2>&1"


rule dataset_summary:
    input:
        dataset_input,
    output:
        paths.dataset_summary("{ds}", "{split}"),
    params:
        root=dataset_root,
        kind=dataset_kind,
    log:
        "logs/{ds}/dataset_summary_{split}.log",
    benchmark:
        "results/{ds}/benchmarks/dataset_summary_{split}.tsv"
    wildcard_constraints:
        ds="|".join(TRAINABLE_DATASETS),
    threads: rule_resources("data")["threads"]
    resources:
        mem_mb=rule_resources("data")["mem_mb"],
        runtime=rule_resources("data")["runtime"],
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds data summary --root {params.root} --split {wildcards.split} --kind {params.kind}"
        " --check-files --json --out {output} > {log} 2>&1"
