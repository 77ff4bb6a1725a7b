from checkout import log_to

log_to(snakemake.log[0])

from pathlib import Path

from demoscope.parquet import read_table, write_csv
from demoscope.strategyreport import strategy_table, task_spearman_table

evaluations = []
for path in snakemake.input.evaluations:
    model, task, _, strategy = Path(path).with_suffix("").parts[-4:]
    table = read_table(path)
    evaluations.append(({"model": model, "task": task, "strategy": strategy, "detail": table["detail"][0]}, table))
write_csv(strategy_table(evaluations, alpha=snakemake.params.alpha), snakemake.output.strategies)
parts = [({"model": Path(p).parts[-3], "task": Path(p).parts[-2]}, read_table(p)) for p in snakemake.input.task_spearman]
write_csv(task_spearman_table(parts), snakemake.output.task_spearman)
