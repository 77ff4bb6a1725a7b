from checkout import log_to

log_to(snakemake.log[0])

from pathlib import Path


from demoscope.parquet import read_table, write_csv, write_parquet
from demoscope.report import spearman_table, summary_markdown

quality = {}
for path in snakemake.input.quality:
    model, task = Path(path).parts[-3:-1]
    quality[(model, task)] = read_table(path)
parts = []
for path in snakemake.input.features:
    model, task, _, mask, site = Path(path).with_suffix("").parts[-5:]
    parts.append(
        {"model": model, "task": task, "mask": mask, "site": site,
         "features": read_table(path), "quality": quality[(model, task)]}
    )
table = spearman_table(parts, snakemake.params.metrics)
write_csv(table, snakemake.output.csv)
write_parquet(table, snakemake.output.parquet)
Path(snakemake.output.summary).write_text(summary_markdown(table, quality, snakemake.params.bound))
