# CGL training: one job per round, each resuming from the previous round's checkpoint.


rule train_settings:
    output:
        "results/{ds}/{method}/settings.json",
    params:
        settings=resolved_train_settings,
    log:
        "logs/{ds}/{method}/train_settings.log",
    localrule: True
    run:
        write_json(output[0], params.settings)


rule train_round:
    input:
        settings="results/{ds}/{method}/settings.json",
        proposals=train_proposals,
        previous=previous_round,
    output:
        checkpoint=protected("results/{ds}/{method}/round{round}.pt"),
        scalars="results/{ds}/{method}/training/round{round}_scalars.csv",
    params:
        previous=lambda wildcards, input: f"--previous {input.previous}" if input.previous else "",
    log:
        "logs/{ds}/{method}/train_round{round}.log",
    benchmark:
        "results/{ds}/benchmarks/{method}/train_round{round}.tsv"
    wildcard_constraints:
        round=r"\d+",
    threads: rule_resources("train")["threads"]
    resources:
        mem_mb=rule_resources("train")["mem_mb"],
        runtime=rule_resources("train")["runtime"],
        gpu=rule_resources("train")["gpu"],
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds train --settings {input.settings} --proposals {input.proposals} --round {wildcards.round}"
        " {params.previous} --out {output.checkpoint} --scalars {output.scalars} --threads {threads}"
        " --no-progress > {log} 2>&1"


rule training_curves:
    input:
        all_round_scalars,
    output:
        "results/{ds}/{method}/training/curves.png",
    log:
        "logs/{ds}/{method}/training_curves.log",
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds plot-training {input} --out {output} --title '{wildcards.ds} / {wildcards.method}' > {log} 2>&1"
