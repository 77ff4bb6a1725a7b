from checkout import log_to

log_to(snakemake.log[0])

import polars as pl

from demoscope.report.figures import sae_lens

model, task = snakemake.wildcards.model, snakemake.wildcards.task
table = pl.read_parquet(snakemake.input[0]).filter((pl.col("model") == model) & (pl.col("task") == task))
sae_lens(table, snakemake.params.quality, snakemake.params.bound, f"{model} / {task}: SAE lens", snakemake.output)
