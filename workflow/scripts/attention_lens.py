from checkout import log_to

log_to(snakemake.log[0])

import sys

import numpy as np
import polars as pl

from demoscope.lm import modeljob
from demoscope.lenses.attention import best_head, candidate_features
from demoscope.parquet import read_table, write_parquet
from demoscope.data.templates import Template

compute = snakemake.config["compute"]
params = snakemake.params
model, tokenizer, device = modeljob.start(snakemake)
# Attention weights need the eager implementation: the fused kernels return none.
model.set_attn_implementation("eager")
template = Template.from_config(params.template)
calibration = read_table(snakemake.input.calibration)
# build_prompts' probe queries (the query mask's), their rendered text under `text`.
probes = read_table(snakemake.input.probes).select("record_id", pl.col("query").alias("text"))
demos = calibration.filter(pl.col("role") == "demonstration")
queries = calibration.filter(pl.col("role") == "query")
layer, head, mass = best_head(
    model, tokenizer, template, demos, queries, params.by_label, device, compute["batch_tokens"]
)
print(f"best head: layer {layer}, head {head} (mean label attention {mass[layer, head]:.4f})", file=sys.stderr)
per_layer, at_head = candidate_features(
    model, tokenizer, template, read_table(snakemake.input.candidates), probes,
    (layer, head), device, compute["batch_tokens"],
)
write_parquet(per_layer, snakemake.output.per_layer)
write_parquet(at_head, snakemake.output.best_head)
n_layers, n_heads = mass.shape
write_parquet(
    pl.DataFrame(
        {
            "layer": np.repeat(np.arange(n_layers), n_heads),
            "head": np.tile(np.arange(n_heads), n_layers),
            "calibration_label_attention": mass.ravel(),
            "best": [(l, h) == (layer, head) for l in range(n_layers) for h in range(n_heads)],
        }
    ),
    snakemake.output.heads,
)
