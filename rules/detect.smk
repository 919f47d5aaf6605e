# Detections of a run ({run} = {method} for WSOD, {method}/frcnn for the retrained detector):
# sharded, merged, exported; VOC metrics; pseudo ground truth from the WSOD detections; headline.


rule detect_settings:
    output:
        paths.detect_settings("{ds}", "{run}"),
    params:
        settings=lambda wildcards: wf.detect_settings(config, wildcards.ds, wildcards.run),
    log:
        "logs/{ds}/{run}/detect_settings.log",
    localrule: True
    run:
        write_json(output[0], params.settings)


rule detect_shard:
    input:
        settings=paths.detect_settings("{ds}", "{run}"),
        checkpoint=final_checkpoint,
        proposals=paths.proposals("{ds}", "{split}"),
    output:
        temp(paths.detection_shard("{ds}", "{run}", "{split}", "{shard}", "{nshards}")),
    log:
        "logs/{ds}/{run}/detect_{split}.{shard}-of-{nshards}.log",
    benchmark:
        "results/{ds}/benchmarks/{run}/detect_{split}.{shard}-of-{nshards}.tsv"
    wildcard_constraints:
        shard=r"\d+",
        nshards=r"\d+",
    threads: rule_resources("detect")["threads"]
    resources:
        mem_mb=rule_resources("detect")["mem_mb"],
        runtime=rule_resources("detect")["runtime"],
        gpu=rule_resources("detect")["gpu"],
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds detect run --settings {input.settings} --checkpoint {input.checkpoint}"
        " --proposals {input.proposals} --split {wildcards.split}"
        " --shard {wildcards.shard}/{wildcards.nshards} --threads {threads}"
        " --out {output} --no-progress > {log} 2>&1"


rule detect_merge:
    input:
        settings=paths.detect_settings("{ds}", "{run}"),
        shards=detection_shards,
    output:
        paths.detections("{ds}", "{run}", "{split}"),
    log:
        "logs/{ds}/{run}/detect_merge_{split}.log",
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds detect merge --settings {input.settings} --split {wildcards.split} --out {output}"
        " {input.shards} > {log} 2>&1"


rule detect_export:
    input:
        paths.detections("{ds}", "{run}", "{split}"),
    output:
        coco=paths.coco_results("{ds}", "{run}", "{split}"),
        comp4=directory(paths.comp4_dir("{ds}", "{run}", "{split}")),
    log:
        "logs/{ds}/{run}/detect_export_{split}.log",
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds detect export --detections {input} --coco-json {output.coco} --comp4-dir {output.comp4}"
        " > {log} 2>&1"


rule evaluation_settings:
    output:
        paths.evaluation_settings("{ds}"),
    params:
        settings=lambda wildcards: wf.evaluation_settings(config, wildcards.ds),
    log:
        "logs/{ds}/evaluation_settings.log",
    wildcard_constraints:
        ds="|".join(TRAINABLE_DATASETS),
    localrule: True
    run:
        write_json(output[0], params.settings)


rule voc_metric:
    input:
        dataset=dataset_input,
        settings=paths.evaluation_settings("{ds}"),
        detections=paths.detections("{ds}", "{run}", "{split}"),
    output:
        paths.metric("{ds}", "{run}", "{split}", "{metric}"),
    log:
        "logs/{ds}/{run}/metric_{split}_{metric}.log",
    wildcard_constraints:
        metric="map|corloc",
        ds="|".join(TRAINABLE_DATASETS),
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds evaluate voc --settings {input.settings} --split {wildcards.split}"
        " --detections {input.detections} --metric {wildcards.metric} --out {output} > {log} 2>&1"


rule classification_metric:
    input:
        dataset=dataset_input,
        settings=paths.evaluation_settings("{ds}"),
        detections=paths.detections("{ds}", "{run}", "{split}"),
    output:
        paths.metric("{ds}", "{run}", "{split}", "classification"),
    log:
        "logs/{ds}/{run}/metric_{split}_classification.log",
    wildcard_constraints:
        ds="|".join(TRAINABLE_DATASETS),
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds evaluate classification --settings {input.settings} --split {wildcards.split}"
        " --detections {input.detections} --out {output} > {log} 2>&1"


rule predict_settings:
    output:
        paths.predict_settings("{ds}", "{run}"),
    params:
        settings=lambda wildcards: wf.predict_settings(config, wildcards.ds, wildcards.run),
    log:
        "logs/{ds}/{run}/predict_settings.log",
    run:
        write_json(output[0], params.settings)


rule failure_modes:
    input:
        dataset=dataset_input,
        settings=paths.evaluation_settings("{ds}"),
        detections=paths.detections("{ds}", "{run}", "{split}"),
    output:
        paths.metric("{ds}", "{run}", "{split}", "failures"),
    log:
        "logs/{ds}/{run}/failures_{split}.log",
    wildcard_constraints:
        ds="|".join(TRAINABLE_DATASETS),
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds evaluate failures --settings {input.settings} --split {wildcards.split}"
        " --detections {input.detections} --out {output} > {log} 2>&1"


rule pseudo_gt_settings:
    output:
        paths.pseudo_gt_settings("{ds}", "{method}"),
    params:
        settings=lambda wildcards: wf.pseudo_gt_settings(config, wildcards.ds),
    log:
        "logs/{ds}/{method}/pseudo_gt_settings.log",
    wildcard_constraints:
        ds="|".join(TRAINABLE_DATASETS),
    localrule: True
    run:
        write_json(output[0], params.settings)


rule pseudo_gt:
    input:
        dataset=dataset_input,
        settings=paths.pseudo_gt_settings("{ds}", "{method}"),
        scores=pseudo_gt_scores,
    output:
        pgt=paths.pseudo_gt("{ds}", "{method}"),
        report=paths.pseudo_gt_report("{ds}", "{method}"),
    log:
        "logs/{ds}/{method}/pseudo_gt.log",
    wildcard_constraints:
        ds="|".join(TRAINABLE_DATASETS),
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds pseudo-gt --settings {input.settings} --scores {input.scores}"
        " --out {output.pgt} --report {output.report} > {log} 2>&1"


rule headline:
    input:
        unpack(lambda wildcards: wf.headline_inputs(config, wildcards.ds)),
    output:
        paths.headline("{ds}"),
    params:
        config_hash=wf.config_hash(config),
        method=wf.DEFAULT_METHOD,
        inputs=lambda wildcards, input: wf.cli_flags(dict(input.items())),
    log:
        "logs/{ds}/headline.log",
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds headline --dataset {wildcards.ds} --method {params.method} {params.inputs}"
        " --config-hash {params.config_hash} --out {output} > {log} 2>&1"
