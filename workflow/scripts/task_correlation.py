from checkout import log_to

log_to(snakemake.log[0])

import polars as pl

from demoscope.lenses.features import FEATURES
from demoscope.lenses.registry import SAE_FEATURES, lens_of
from demoscope.parquet import read_table, write_parquet
from demoscope.stats.taskcorr import task_rho_rows

sets = read_table(snakemake.input.sets)
parts = []
stores = snakemake.params.stores  # the (mask, site) of each table, in the inputs' order
for names, kind in ((FEATURES, "features"), (SAE_FEATURES, "sae_features")):
    for store, path in zip(stores[kind], snakemake.input[kind], strict=True):
        mask, site = store["mask"], store["site"]
        rows = task_rho_rows(read_table(path), sets, list(names), snakemake.params.alpha)
        parts.append(rows.with_columns(pl.lit(mask).alias("mask"), pl.lit(site).alias("site")))
table = pl.concat(parts)
lenses = {feature: lens_of(feature) for feature in table["feature"].unique().to_list()}
table = table.with_columns(pl.col("feature").replace_strict(lenses, return_dtype=pl.String).alias("lens"))
write_parquet(table.select("mask", "site", "lens", pl.exclude("mask", "site", "lens")), snakemake.output[0])
