from checkout import log_to

log_to(snakemake.log[0])

import polars as pl

from demoscope.report.figures import strategy_accuracy_bars

model, task = snakemake.wildcards.model, snakemake.wildcards.task
table = pl.read_csv(snakemake.input[0]).filter((pl.col("model") == model) & (pl.col("task") == task))
n_queries = table["n_queries"][0]
title = f"{model} / {task}: {n_queries}-query test accuracy per selection strategy"
strategy_accuracy_bars(table, title, snakemake.output)
