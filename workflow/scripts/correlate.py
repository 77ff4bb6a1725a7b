from checkout import log_to

log_to(snakemake.log[0])

import polars as pl

from demoscope.bootstrap import resample_rng
from demoscope.features import FEATURES
from demoscope.parquet import write_parquet
from demoscope.rhotable import rho_rows

params = snakemake.params
quality = pl.read_parquet(snakemake.input.quality).join(
    pl.read_parquet(snakemake.input.candidates).select("cand_id", "n_tokens"), on="cand_id"
)
rows = rho_rows(
    pl.read_parquet(snakemake.input.features),
    quality,
    list(params.get("features", FEATURES)),
    params.metrics,
    params.bootstrap,
    resample_rng(params.seed, snakemake.wildcards.model, snakemake.wildcards.task),
    control_label=params.control_label,
)
write_parquet(rows, snakemake.output[0])
