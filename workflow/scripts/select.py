from checkout import log_to

log_to(snakemake.log[0])

import sys

from demoscope.parquet import read_table, write_parquet
from demoscope.selection import select

spec = dict(snakemake.params.strategy)
# Only the signal tables this strategy's rule lists are read; the test queries' table never is.
signals = {name: read_table(path) for name, path in snakemake.input.items() if name != "candidates"}
table = select(
    spec,
    read_table(snakemake.input.candidates),
    spec.pop("k"),
    spec.pop("label_balance"),
    spec.pop("run_seed", 0),
    **signals,
)
print(f"{snakemake.wildcards.strategy}: {table['detail'][0]}", file=sys.stderr)
write_parquet(table, snakemake.output[0])
