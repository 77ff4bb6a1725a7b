from checkout import log_to

log_to(snakemake.log[0])

import polars as pl

from demoscope.report.figures import massive_by_layer

model, task = snakemake.wildcards.model, snakemake.wildcards.task
mask, site = snakemake.params.store["mask"], snakemake.params.store["site"]
massive_by_layer(
    pl.read_parquet(snakemake.input[0]), snakemake.params.threshold, f"{model} / {task}: {mask} / {site}", snakemake.output
)
