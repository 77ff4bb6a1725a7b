from checkout import log_to

log_to(snakemake.log[0])

from demoscope.parquet import read_table, write_csv
from demoscope.selection.strategyreport import strategy_table, task_spearman_table

# The keys of each input, in the inputs' order (the script never parses a path).
keys = snakemake.params.inputs_of
evaluations = []
for key, path in zip(keys["evaluations"], snakemake.input.evaluations, strict=True):
    table = read_table(path)
    evaluations.append(({**key, "detail": table["detail"][0]}, table))
write_csv(strategy_table(evaluations, alpha=snakemake.params.alpha), snakemake.output.strategies)
parts = [(dict(key), read_table(p)) for key, p in zip(keys["task_spearman"], snakemake.input.task_spearman, strict=True)]
write_csv(task_spearman_table(parts), snakemake.output.task_spearman)
