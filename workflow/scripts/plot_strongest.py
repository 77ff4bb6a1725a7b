from checkout import log_to

log_to(snakemake.log[0])

import polars as pl

from demoscope import paths
from demoscope.report.figures import message, strongest_scatter

model, task = snakemake.wildcards.model, snakemake.wildcards.task
title = f"{model} / {task}: strongest feature"
top = pl.read_csv(snakemake.input.headline).filter((pl.col("model") == model) & (pl.col("task") == task))
row = top.row(0, named=True)
if row["feature"] is None:
    message("Every correlation of this model and task is NaN.", title, snakemake.output)
else:
    folders = {"sae": "sae_features", "task_vector": "tv_features", "attention": "attn_features"}
    folder = folders.get(row["lens"], "features")
    store = paths.store_table(folder, model, task, row["mask"], row["site"])
    tables = [*snakemake.input.features, *snakemake.input.sae_features, *snakemake.input.lens_features]
    if store not in tables:
        raise ValueError(f"plot_strongest: the headline's strongest feature is in {store}, which the rule does not read")
    features = pl.read_parquet(store)
    data = features.filter(pl.col("layer") == row["layer"]).join(pl.read_parquet(snakemake.input.quality), on="cand_id")
    strongest_scatter(data[row["feature"]], data[row["quality"]], data["label"], row, title, snakemake.output)
