from checkout import log_to

log_to(snakemake.log[0])

from demoscope.stats.bootstrap import resample_rng
from demoscope.parquet import read_table, write_parquet
from demoscope.stats.reliability import reliability_tables

params = snakemake.params
summary, curve = reliability_tables(
    read_table(snakemake.input.by_query),
    read_table(snakemake.input.quality),
    list(params.metrics),
    params.splits,
    resample_rng(params.seed, snakemake.wildcards.model, snakemake.wildcards.task, "reliability"),
    params.degenerate_share,
)
write_parquet(summary, snakemake.output.summary)
write_parquet(curve, snakemake.output.curve)
