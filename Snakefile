from snakemake.utils import min_version

min_version("9.0")


# The default run's config, unless --configfile names a complete config of its own (for
# example config/paper.yaml): Snakemake would merge that file over this one, and the default
# run's models and tasks would join it. --config KEY=VALUE still applies on top of either.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# A GPU count is a property of one machine: --resources gpu=N limits the GPU jobs that run
# at once on this machine, never the jobs submitted to a cluster (each gets its own node).
resource_scopes:
    gpu="local",


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
include: "workflow/rules/controls.smk"
include: "workflow/rules/sae.smk"
include: "workflow/rules/lenses.smk"
include: "workflow/rules/selection.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/figures.smk"
