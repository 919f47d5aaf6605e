# wsjds: WS-JDS (Shen et al., CVPR 2019) as file-backed stages.
#
#   snakemake --cores 2                                   synthetic default target
#   snakemake --cores 8 results/voc07_frcnn_map.json      the VOC2007 headline (needs VOCdevkit)
#   snakemake --report report.html                        the results page of what was built
#   snakemake --cores 2 results/synth_ablation.json       Table 1: every method x seed (not in the default)
#
# Rules are thin: each calls the `wsjds` CLI; the logic lives in the wsjds package.

import os

from snakemake.utils import min_version, validate

from wsjds import workflow as wf
from wsjds.workflow.targets import default_targets

min_version("9.0")

# envs/wsjds.post-deploy.sh installs the package from this checkout into the rules' conda env.
os.environ.setdefault("WSJDS_SOURCE", workflow.basedir)


configfile: "config.yaml"


# `snakemake --report report.html`: this page's text; items are flagged with report() in the rules.
report: "report/workflow.rst"


wf.validate_config(config, os.path.join(workflow.basedir, "schemas/config.schema.yaml"))   # short messages
validate(config, "schemas/config.schema.yaml")   # the same schema; fills its defaults
wf.check_references(config)

SYNTHETIC_DATASETS = wf.datasets_of_kind(config, "synthetic")
TAGS_DATASETS = wf.datasets_of_kind(config, "tags")
TRAINABLE_DATASETS = wf.datasets_of_kind(config, *wf.TRAINABLE_KINDS)   # the whole chain runs on these


wildcard_constraints:
    ds="|".join(config["datasets"]),
    method=wf.method_wildcard(config),   # wsjds, or wsjds-seed12: the method with training seed 12
    run=wf.run_wildcard(config),         # {method} or {method}/frcnn
    split=r"[A-Za-z0-9_]+",
    weights="|".join(config["weights"]),


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/proposals.smk"
include: "rules/cgl.smk"
include: "rules/frcnn.smk"
include: "rules/detect.smk"
include: "rules/masks.smk"
include: "rules/report.smk"
include: "rules/ablation.smk"


rule all:
    input:
        default_targets(config),
    default_target: True
