from checkout import log_to

log_to(snakemake.log[0])

from demoscope.report.figures import reliability_by_queries
from demoscope.parquet import read_table

model, task = snakemake.wildcards.model, snakemake.wildcards.task
reliability_by_queries(
    read_table(snakemake.input.summary),
    read_table(snakemake.input.curve),
    f"{model} / {task}: reliability of quality",
    snakemake.output,
)
