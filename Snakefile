# unet-repro: Ronneberger, Fischer & Brox, "U-Net" (MICCAI 2015), end to end.
#
#   snakemake --cores 8 --use-conda                      # paper configuration
#   snakemake --cores 2 --configfile config/quick.yaml   # CPU configuration
#   snakemake --cores 2 weight_maps                      # data + weight maps only


# config/config.yaml is the paper's configuration; a --configfile replaces it (not merged).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    default_target: True
    input:
        rules.weight_maps.input,
        evaluation_targets(),
