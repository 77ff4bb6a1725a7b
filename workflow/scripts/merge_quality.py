from checkout import log_to

log_to(snakemake.log[0])

from demoscope.parquet import read_table, write_parquet
from demoscope.quality.shards import merge_shards

for name in ("by_query", "quality"):
    tables = [read_table(path) for path in snakemake.input[name]]
    write_parquet(merge_shards(tables), snakemake.output[name])
