from checkout import log_to

log_to(snakemake.log[0])

from pathlib import Path

import polars as pl

from demoscope.features import FEATURES
from demoscope.lenses import SAE_FEATURES, lens_of
from demoscope.parquet import read_table, write_parquet
from demoscope.taskcorr import task_rho_rows

sets = read_table(snakemake.input.sets)
parts = []
for names, paths in ((FEATURES, snakemake.input.features), (SAE_FEATURES, snakemake.input.sae_features)):
    for path in paths:
        mask, site = Path(path).with_suffix("").parts[-2:]
        rows = task_rho_rows(read_table(path), sets, list(names), snakemake.params.alpha)
        parts.append(rows.with_columns(pl.lit(mask).alias("mask"), pl.lit(site).alias("site")))
table = pl.concat(parts)
lenses = {feature: lens_of(feature) for feature in table["feature"].unique().to_list()}
table = table.with_columns(pl.col("feature").replace_strict(lenses, return_dtype=pl.String).alias("lens"))
write_parquet(table.select("mask", "site", "lens", pl.exclude("mask", "site", "lens")), snakemake.output[0])
