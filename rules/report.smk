# Report items (`snakemake --report report.html`): per method a metrics table beside the paper's
# numbers (VOC2007), PR curves of every run's test detections, and a figure in the style of the
# paper's Fig. 4. The training curves (rules/cgl.smk) are flagged for the report there.
# Numbers of the figures come from config `report` through results/{ds}/report_settings.json;
# inputs and that file from wsjds.workflow.report.

from wsjds.workflow import report as report_rules


rule report_settings:
    output:
        paths.report_settings("{ds}"),
    params:
        settings=lambda wildcards: report_rules.report_settings(config, wildcards.ds),
    log:
        "logs/{ds}/report_settings.log",
    wildcard_constraints:
        ds="|".join(TRAINABLE_DATASETS),
    localrule: True
    run:
        write_json(output[0], params.settings)


rule report_metrics_table:
    input:
        unpack(lambda wildcards: report_rules.metrics_inputs(config, wildcards.ds, wildcards.method)),
    output:
        report(
            paths.report_item("{ds}", "{method}", "metrics.html"),
            caption="../report/metrics_table.rst",
            category="Metrics",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "method": "{method}"},
        ),
    params:
        flags=lambda wildcards: report_rules.metrics_flags(config, wildcards.ds, wildcards.method),
    log:
        "logs/{ds}/{method}/report_metrics_table.log",
    wildcard_constraints:
        ds="|".join(TRAINABLE_DATASETS),
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds report metrics-table --title '{wildcards.ds} / {wildcards.method}' {params.flags}"
        " --out {output} > {log} 2>&1"


rule report_pr_curves:
    input:
        dataset=dataset_input,
        settings=paths.report_settings("{ds}"),
        detections=paths.detections("{ds}", "{run}", "{split}"),
    output:
        report(
            paths.report_item("{ds}", "{run}", "pr_curves_{split}.png"),
            caption="../report/pr_curves.rst",
            category="PR curves",
            subcategory="{ds}",
            labels={"run": "{run}", "split": "{split}"},
        ),
    log:
        "logs/{ds}/{run}/report_pr_curves_{split}.log",
    wildcard_constraints:
        ds="|".join(TRAINABLE_DATASETS),
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds report pr-curves --settings {input.settings} --split {wildcards.split}"
        " --detections {input.detections} --title '{wildcards.ds} / {wildcards.run} / {wildcards.split}'"
        " --out {output} > {log} 2>&1"


rule report_figure4:
    input:
        dataset=dataset_input,
        settings=paths.train_settings("{ds}", "{method}"),
        report_settings=paths.report_settings("{ds}"),
        checkpoint=lambda wildcards: wf.final_checkpoint(config, wildcards.ds, wildcards.method),
        proposals=paths.proposals("{ds}", "{split}"),
    output:
        report(
            paths.report_item("{ds}", "{method}", "figure4_{split}.png"),
            caption="../report/figure4.rst",
            category="Fig. 4: CGL steps",
            subcategory="{ds}",
            labels={"method": "{method}", "split": "{split}"},
        ),
    log:
        "logs/{ds}/{method}/report_figure4_{split}.log",
    benchmark:
        "results/{ds}/benchmarks/{method}/report_figure4_{split}.tsv"
    wildcard_constraints:
        ds="|".join(TRAINABLE_DATASETS),
    threads: rule_resources("masks")["threads"]
    resources:
        mem_mb=rule_resources("masks")["mem_mb"],
        runtime=rule_resources("masks")["runtime"],
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds report figure4 --settings {input.settings} --checkpoint {input.checkpoint}"
        " --proposals {input.proposals} --split {wildcards.split} --report-settings {input.report_settings}"
        " --threads {threads}"
        " --title '{wildcards.ds} / {wildcards.method} / {wildcards.split}' --out {output} > {log} 2>&1"


rule report_gallery:
    input:
        unpack(lambda wildcards: report_rules.gallery_inputs(config, wildcards.ds, wildcards.method, wildcards.split)),
        settings=paths.report_settings("{ds}"),
    output:
        report(
            paths.report_item("{ds}", "{method}/frcnn", "gallery_{split}.png"),
            caption="../report/gallery.rst",
            category="Gallery",
            subcategory="{ds}",
            labels={"method": "{method}", "split": "{split}"},
        ),
    params:
        flags=lambda wildcards: report_rules.gallery_flags(config, wildcards.ds, wildcards.method, wildcards.split),
    log:
        "logs/{ds}/{method}/report_gallery_{split}.log",
    benchmark:
        "results/{ds}/benchmarks/{method}/report_gallery_{split}.tsv"
    wildcard_constraints:
        ds="|".join(TRAINABLE_DATASETS),
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds report gallery --settings {input.settings} --split {wildcards.split}"
        " --detections {input.detections} {params.flags}"
        " --title '{wildcards.ds} / {wildcards.method}/frcnn / {wildcards.split}' --out {output} > {log} 2>&1"
