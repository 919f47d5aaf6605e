# Instance masks for the detections: crf / nocrf from the segmentation branch (sharded: a network pass
# and a CPU dense CRF per image), bb / ell box baselines; merged, exported as COCO segmentation
# results, and scored (AP^r per variant, AP^b) where the dataset has instance masks (synthetic, COCO).

# VOC has no instance-mask ground truth in COCO form (and the authors' code scores no VOC masks).
INSTANCE_SEG_DATASETS = wf.datasets_of_kind(config, "synthetic", "coco")


rule mask_settings:
    output:
        paths.mask_settings("{ds}", "{method}"),
    params:
        settings=lambda wildcards: wf.mask_settings(config, wildcards.ds),
    log:
        "logs/{ds}/{method}/mask_settings.log",
    localrule: True
    run:
        write_json(output[0], params.settings)


rule masks_model_shard:
    input:
        unpack(mask_model_inputs),
        dataset=dataset_input,
        detections=mask_input_detections,
    output:
        crf=temp(paths.mask_shard("{ds}", "{method}", "{split}", "crf", "{shard}", "{nshards}")),
        nocrf=temp(paths.mask_shard("{ds}", "{method}", "{split}", "nocrf", "{shard}", "{nshards}")),
    log:
        "logs/{ds}/{method}/masks_{split}.{shard}-of-{nshards}.log",
    benchmark:
        "results/{ds}/benchmarks/{method}/masks_{split}.{shard}-of-{nshards}.tsv"
    wildcard_constraints:
        shard=r"\d+",
        nshards=r"\d+",
    threads: rule_resources("masks")["threads"]
    resources:
        mem_mb=rule_resources("masks")["mem_mb"],
        runtime=rule_resources("masks")["runtime"],
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds masks run --detections {input.detections} --split {wildcards.split}"
        " --shard {wildcards.shard}/{wildcards.nshards} --settings {input.settings}"
        " --checkpoint {input.checkpoint} --threads {threads}"
        " --crf-out {output.crf} --nocrf-out {output.nocrf} --no-progress > {log} 2>&1"


rule masks_merge:
    input:
        detections=mask_input_detections,
        shards=mask_shards,
    output:
        paths.masks("{ds}", "{method}", "{split}", "{variant}"),
    log:
        "logs/{ds}/{method}/masks_merge_{split}.{variant}.log",
    wildcard_constraints:
        variant="crf|nocrf",
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds masks merge --detections {input.detections} --out {output} {input.shards} > {log} 2>&1"


rule masks_box_baseline:
    input:
        detections=mask_input_detections,
    output:
        paths.masks("{ds}", "{method}", "{split}", "{variant}"),
    log:
        "logs/{ds}/{method}/masks_{split}.{variant}.log",
    benchmark:
        "results/{ds}/benchmarks/{method}/masks_{split}.{variant}.tsv"
    wildcard_constraints:
        variant="bb|ell",
    threads: rule_resources("masks")["threads"]
    resources:
        mem_mb=rule_resources("masks")["mem_mb"],
        runtime=rule_resources("masks")["runtime"],
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds masks run --detections {input.detections} --split {wildcards.split}"
        " --{wildcards.variant}-out {output} --no-progress > {log} 2>&1"


rule masks_export:
    input:
        dataset=dataset_input,
        masks=paths.masks("{ds}", "{method}", "{split}", "{variant}"),
    output:
        paths.mask_coco_results("{ds}", "{method}", "{split}", "{variant}"),
    params:
        annotations=mask_export_flags,
    log:
        "logs/{ds}/{method}/masks_export_{split}.{variant}.log",
    wildcard_constraints:
        variant="crf|nocrf|bb|ell",
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds masks export --masks {input.masks} {params.annotations} --coco-json {output} > {log} 2>&1"


rule instance_seg_metric:
    input:
        unpack(instance_seg_inputs),
    output:
        paths.instance_seg("{ds}", "{method}"),
    params:
        flags=instance_seg_flags,
    log:
        "logs/{ds}/{method}/metric_instance_seg.log",
    wildcard_constraints:
        ds="|".join(INSTANCE_SEG_DATASETS),
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds masks evaluate {params.flags} --out {output} > {log} 2>&1"
