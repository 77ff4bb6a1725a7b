from checkout import log_to

log_to(snakemake.log[0])

from pathlib import Path

import polars as pl

from demoscope.headline import headline
from demoscope.parquet import read_table, write_csv, write_parquet
from demoscope.report import (
    lens_section,
    sae_quality_section,
    skipped_section,
    spearman_table,
    summary_sections,
    task_section,
    to_html,
    to_markdown,
)

params = snakemake.params
quality = {}
for path in snakemake.input.quality:
    model, task = Path(path).parts[-3:-1]
    quality[(model, task)] = read_table(path)
parts = []
lens_tables = [snakemake.input.sae_correlations, snakemake.input.tv_correlations, snakemake.input.attn_correlations]
for path in [*snakemake.input.correlations, *[p for paths in lens_tables for p in paths]]:
    model, task, _, mask, site = Path(path).with_suffix("").parts[-5:]
    parts.append(({"model": model, "task": task, "mask": mask, "site": site}, pl.read_parquet(path)))
table = spearman_table(parts)
top = headline(table, params.bound, params.alpha)
write_csv(table, snakemake.output.csv)
write_parquet(table, snakemake.output.parquet)
write_csv(top, snakemake.output.headline)
skipped = {tuple(Path(p).parts[-4:-2]): read_table(p) for p in snakemake.input.skipped}
sae_quality = []
for path in snakemake.input.sae_quality:
    model, task, _, mask, site = Path(path).with_suffix("").parts[-5:]
    keys = {"model": model, "task": task, "mask": mask, "site": site}
    sae_quality.append(read_table(path).with_columns(*[pl.lit(v).alias(k) for k, v in keys.items()]))
sae_quality = pl.concat(sae_quality) if sae_quality else pl.DataFrame()
if not sae_quality.is_empty():
    where = ["model", "task", "mask", "site"]
    sae_quality = sae_quality.select(*where, *[c for c in sae_quality.columns if c not in where])
sections = summary_sections(table, top, quality, params.alpha)
task_parts = [
    read_table(p).with_columns(pl.lit(Path(p).parts[-3]).alias("model"), pl.lit(Path(p).parts[-2]).alias("task"))
    for p in snakemake.input.task_spearman
]
task = task_section(pl.concat(task_parts) if task_parts else None, top)
sections += [lens_section(table, params.alpha), sae_quality_section(sae_quality), task, skipped_section(skipped)]
Path(snakemake.output.summary).write_text(to_markdown(sections))
Path(snakemake.output.html).write_text(to_html(sections))
