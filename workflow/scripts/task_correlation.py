from checkout import log_to

log_to(snakemake.log[0])

from pathlib import Path

import polars as pl

from demoscope.features import FEATURES
from demoscope.parquet import read_table, write_parquet
from demoscope.taskcorr import task_rho_rows

sets = read_table(snakemake.input.sets)
parts = []
for path in snakemake.input.features:
    mask, site = Path(path).with_suffix("").parts[-2:]
    rows = task_rho_rows(read_table(path), sets, list(FEATURES))
    parts.append(rows.with_columns(pl.lit(mask).alias("mask"), pl.lit(site).alias("site")))
write_parquet(pl.concat(parts).select("mask", "site", pl.exclude("mask", "site")), snakemake.output[0])
