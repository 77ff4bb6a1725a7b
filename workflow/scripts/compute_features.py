from checkout import log_to

log_to(snakemake.log[0])

from demoscope.features import compute_features
from demoscope.parquet import write_parquet
from demoscope.store import open_store

features = compute_features(open_store(snakemake.input[0]), snakemake.params.threshold, snakemake.params.ratio)
write_parquet(features, snakemake.output[0])
