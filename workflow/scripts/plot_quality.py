from checkout import log_to

log_to(snakemake.log[0])

import polars as pl

from demoscope.report.figures import quality_by_label

model, task = snakemake.wildcards.model, snakemake.wildcards.task
quality_by_label(pl.read_parquet(snakemake.input[0]), snakemake.params.metrics, f"{model} / {task}", snakemake.output)
