# The Table 1 ablation (results/{ds}_ablation.json and .png; not part of the default target):
# every method of config `ablation.methods` trained with every seed of `ablation.seeds` as runs
# {method}-seed{N} (training, detection and metric rules as any run), Fast R-CNN retrained for
# `ablation.frcnn_methods`; the summary reads their metrics JSONs. Inputs and the settings come from
# wsjds.workflow.report, the summary and the figure from wsjds.report.ablation.

from wsjds.workflow import report as report_rules


rule ablation:
    input:
        unpack(lambda wildcards: report_rules.ablation_inputs(config, wildcards.ds)),
        settings=paths.report_settings("{ds}"),
    output:
        summary=paths.ablation_summary("{ds}"),
        plot=report(
            paths.ablation_plot("{ds}"),
            caption="../report/ablation.rst",
            category="Ablation (Table 1)",
            subcategory="{ds}",
            labels={"dataset": "{ds}"},
        ),
    params:
        flags=lambda wildcards: report_rules.ablation_flags(config, wildcards.ds),
        config_hash=wf.config_hash(config),
    log:
        "logs/{ds}/ablation.log",
    benchmark:
        "results/{ds}/benchmarks/ablation.tsv"
    wildcard_constraints:
        ds="|".join(TRAINABLE_DATASETS),
    conda:
        "../envs/wsjds.yaml"
    shell:
        "wsjds report ablation --dataset {wildcards.ds} --settings {input.settings} --config-hash {params.config_hash}"
        " {params.flags}"
        " --title '{wildcards.ds}: Table 1 ablation' --out-json {output.summary} --out-plot {output.plot}"
        " > {log} 2>&1"
