# wsjds: WS-JDS (Shen et al., CVPR 2019) as file-backed stages.
#
#   snakemake --cores 2                                   synthetic default target
#   snakemake --cores 8 results/voc07_frcnn_map.json      the VOC2007 headline (needs VOCdevkit)
#
# Rules are thin: each calls the `wsjds` CLI; the logic lives in the wsjds package.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"


rule all:
    input:
        default_targets(),
    default_target: True
