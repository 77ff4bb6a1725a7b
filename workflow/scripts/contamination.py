from checkout import log_to

log_to(snakemake.log[0])

import sys

from demoscope.data.contamination import contamination_table
from demoscope.parquet import read_table, write_parquet

candidates = read_table(snakemake.input.candidates)
sets = {name: read_table(snakemake.input[name]) for name in ("test", "quality")}
table = contamination_table(candidates, sets)
for row in table.iter_rows(named=True):
    print(
        f"{row['set']}: {row['duplicate_candidates']} of {row['candidates']} candidates duplicate "
        f"{row['duplicated_queries']} of {row['queries']} queries",
        file=sys.stderr,
    )
write_parquet(table, snakemake.output[0])
