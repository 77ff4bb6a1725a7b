from checkout import log_to

log_to(snakemake.log[0])

from pathlib import Path

import polars as pl

from demoscope.figures import massive_by_layer

model, task = snakemake.wildcards.model, snakemake.wildcards.task
mask, site = Path(snakemake.input[0]).with_suffix("").parts[-2:]
massive_by_layer(
    pl.read_parquet(snakemake.input[0]), snakemake.params.threshold, f"{model} / {task}: {mask} / {site}", snakemake.output
)
