# CGL training runs: one job per round, each resuming from the previous round's checkpoint. A model
# whose weights entry names a pretraining recipe first gets its trunk from rule pretrain_trunk.
# Fast R-CNN retraining on the pseudo GT has its own rules (frcnn.smk).


rule pretrain_settings:
    output:
        paths.pretrained_settings("{weights}"),
    params:
        settings=lambda wildcards: wf.pretrain_settings(config, wildcards.weights),
    log:
        "logs/pretrained/{weights}_settings.log",
    localrule: True
    run:
        write_json(output[0], params.settings)


rule pretrain_trunk:
    input:
        settings=paths.pretrained_settings("{weights}"),
    output:
        weights=protected(paths.pretrained_weights("{weights}")),
        report=paths.pretrained_report("{weights}"),
    log:
        "logs/pretrained/{weights}.log",
    benchmark:
        "results/benchmarks/pretrained/{weights}.tsv"
    threads: rule_resources("train")["threads"]
    resources:
        mem_mb=rule_resources("train")["mem_mb"],
        runtime=rule_resources("train")["runtime"],
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds pretrain --settings {input.settings} --out {output.weights} --report {output.report}"
        " --threads {threads} --no-progress > {log} 2>&1"


rule train_settings:
    output:
        paths.train_settings("{ds}", "{method}"),
    params:
        settings=lambda wildcards: wf.train_settings(config, wildcards.ds, wildcards.method),
    log:
        "logs/{ds}/{method}/train_settings.log",
    localrule: True
    run:
        write_json(output[0], params.settings)


rule train_round:
    input:
        settings=paths.train_settings("{ds}", "{method}"),
        pretrained=lambda wildcards: wf.pretrained_inputs(wf.train_settings(config, wildcards.ds, wildcards.method)),
        proposals=train_proposals,
        previous=lambda wildcards: previous_round(wildcards, wildcards.method),
    output:
        checkpoint=protected(paths.checkpoint("{ds}", "{method}", "{round}")),
        scalars=paths.round_scalars("{ds}", "{method}", "{round}"),
    params:
        previous=lambda wildcards, input: f"--previous {input.previous}" if input.previous else "",
    log:
        "logs/{ds}/{method}/train_round{round}.log",
    benchmark:
        "results/{ds}/benchmarks/{method}/train_round{round}.tsv"
    wildcard_constraints:
        round=r"\d+",
    threads: train_job_resource("threads", "{method}")
    resources:
        mem_mb=rule_resources("train")["mem_mb"],
        runtime=rule_resources("train")["runtime"],
        gpu=train_job_resource("gpu", "{method}"),
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds train --settings {input.settings} --proposals {input.proposals} --round {wildcards.round}"
        " {params.previous} --out {output.checkpoint} --scalars {output.scalars}"
        " --threads {threads} --no-progress > {log} 2>&1"


rule training_curves:
    input:
        all_round_scalars,
    output:
        report(
            paths.training_curves("{ds}", "{run}"),
            caption="../report/training_curves.rst",
            category="Training curves",
            subcategory="{ds}",
            labels={"run": "{run}"},
        ),
    params:
        dpi=config["report"]["dpi"],
    log:
        "logs/{ds}/{run}/training_curves.log",
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds plot-training {input} --out {output} --title '{wildcards.ds} / {wildcards.run}'"
        " --dpi {params.dpi} > {log} 2>&1"
