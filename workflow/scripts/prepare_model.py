from checkout import log_to

log_to(snakemake.log[0])

from demoscope.lm.models import prepare

prepare(snakemake.params.source, snakemake.output[0], revision=snakemake.params.revision)
