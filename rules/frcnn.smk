# Fast R-CNN retraining on a CGL run's pseudo GT ({method}/frcnn): its settings, then one job
# per round as for CGL training. It starts from the WSOD model (frcnn.<preset>.init: wsod) or from
# the trunk's weights alone; its detections, metrics and reports are the detection rules' ({run}).


rule frcnn_settings:
    output:
        paths.train_settings("{ds}", "{method}/frcnn"),
    params:
        settings=lambda wildcards: wf.frcnn_settings(config, wildcards.ds, wildcards.method),
    log:
        "logs/{ds}/{method}/frcnn/train_settings.log",
    localrule: True
    run:
        write_json(output[0], params.settings)


rule frcnn_round:
    input:
        settings=paths.train_settings("{ds}", "{method}/frcnn"),
        targets=paths.pseudo_gt("{ds}", "{method}"),
        wsod=lambda wildcards: wf.final_checkpoint(config, wildcards.ds, wildcards.method),
        pretrained=lambda wildcards: wf.pretrained_inputs(wf.frcnn_settings(config, wildcards.ds, wildcards.method)),
        proposals=train_proposals,
        previous=lambda wildcards: previous_round(wildcards, f"{wildcards.method}/frcnn"),
    output:
        checkpoint=protected(paths.checkpoint("{ds}", "{method}/frcnn", "{round}")),
        scalars=paths.round_scalars("{ds}", "{method}/frcnn", "{round}"),
    params:
        previous=lambda wildcards, input: f"--previous {input.previous}" if input.previous else "",
    log:
        "logs/{ds}/{method}/frcnn/train_round{round}.log",
    benchmark:
        "results/{ds}/benchmarks/{method}/frcnn/train_round{round}.tsv"
    wildcard_constraints:
        round=r"\d+",
    threads: train_job_resource("threads", "{method}/frcnn")
    resources:
        mem_mb=rule_resources("train")["mem_mb"],
        runtime=rule_resources("train")["runtime"],
        gpu=train_job_resource("gpu", "{method}/frcnn"),
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds frcnn train --settings {input.settings} --targets {input.targets} --wsod-checkpoint {input.wsod}"
        " --proposals {input.proposals} --round {wildcards.round} {params.previous}"
        " --out {output.checkpoint} --scalars {output.scalars} --threads {threads} --no-progress > {log} 2>&1"
