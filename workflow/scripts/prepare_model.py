import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from demoscope.models import prepare

prepare(snakemake.params.source, snakemake.output[0], revision=snakemake.params.revision)
