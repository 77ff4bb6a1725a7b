from checkout import log_to

log_to(snakemake.log[0])

import sys

import polars as pl

from demoscope.stats.bootstrap import resample_rng
from demoscope.stats.degenerate import usable_metrics
from demoscope.lenses.features import FEATURES
from demoscope.stats.maxnull import null_table, permutations
from demoscope.parquet import write_parquet
from demoscope.stats.rhotable import rho_rows

params = snakemake.params
wildcards = snakemake.wildcards
quality = (
    pl.read_parquet(snakemake.input.quality)
    .join(pl.read_parquet(snakemake.input.candidates).select("cand_id", "n_tokens"), on="cand_id")
    .sort("cand_id")
)
features = pl.read_parquet(snakemake.input.features)
# A control that does not apply to the task (label_index beyond binary tasks) has no column.
names = [name for name in params.get("features", FEATURES) if name in features.columns]
# Degenerate metrics are reported, never correlated (demoscope.stats.degenerate).
metrics = usable_metrics(quality, list(params.metrics), params.degenerate_share)
rows = rho_rows(
    features,
    quality,
    names,
    metrics,
    params.bootstrap,
    resample_rng(params.seed, wildcards.model, wildcards.task),
    control_label=params.control_label,
)
write_parquet(rows, snakemake.output.rho)
print(f"{len(rows)} tests over {len(metrics)} usable metrics ({', '.join(metrics) or 'none'})", file=sys.stderr)
perms = permutations(len(quality), params.permutations, params.seed, wildcards.model, wildcards.task)
write_parquet(null_table(features, quality, names, metrics, perms), snakemake.output.null)
