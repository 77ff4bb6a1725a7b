from checkout import log_to

log_to(snakemake.log[0])

from pathlib import Path

import polars as pl

from demoscope.headline import headline
from demoscope.parquet import read_table, write_csv, write_parquet
from demoscope.report import skipped_section, spearman_table, summary_sections, task_section, to_html, to_markdown

params = snakemake.params
quality = {}
for path in snakemake.input.quality:
    model, task = Path(path).parts[-3:-1]
    quality[(model, task)] = read_table(path)
parts = []
for path in snakemake.input.correlations:
    model, task, _, mask, site = Path(path).with_suffix("").parts[-5:]
    parts.append(({"model": model, "task": task, "mask": mask, "site": site}, pl.read_parquet(path)))
table = spearman_table(parts)
top = headline(table, params.bound, params.alpha)
write_csv(table, snakemake.output.csv)
write_parquet(table, snakemake.output.parquet)
write_csv(top, snakemake.output.headline)
skipped = {tuple(Path(p).parts[-4:-2]): read_table(p) for p in snakemake.input.skipped}
task_parts = [
    read_table(p).with_columns(pl.lit(Path(p).parts[-3]).alias("model"), pl.lit(Path(p).parts[-2]).alias("task"))
    for p in snakemake.input.task_spearman
]
task = task_section(pl.concat(task_parts) if task_parts else None, top)
sections = summary_sections(table, top, quality, params.alpha) + [task, skipped_section(skipped)]
Path(snakemake.output.summary).write_text(to_markdown(sections))
Path(snakemake.output.html).write_text(to_html(sections))
