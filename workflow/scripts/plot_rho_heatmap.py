from checkout import log_to

log_to(snakemake.log[0])

import polars as pl

from demoscope.report.figures import rho_heatmap

model, task = snakemake.wildcards.model, snakemake.wildcards.task
table = pl.read_parquet(snakemake.input.spearman).filter((pl.col("model") == model) & (pl.col("task") == task))
top = pl.read_csv(snakemake.input.headline).filter((pl.col("model") == model) & (pl.col("task") == task))
rho_heatmap(table, snakemake.params.quality, f"{model} / {task}", snakemake.output, null_q95=top["null_max_q95"][0])
