from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


rule all:
    default_target: True
    input:
        paper_outputs(),


rule paper:
    input:
        paper_outputs(),


include: "workflow/rules/models.smk"
include: "workflow/rules/prompts.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/quality.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/figures.smk"
