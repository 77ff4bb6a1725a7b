from checkout import log_to

log_to(snakemake.log[0])

from pathlib import Path

import polars as pl

from demoscope.data.contamination import summary_section as contamination_section
from demoscope.stats.headline import headline
from demoscope.stats.maxnull import family_null
from demoscope.parquet import read_table, write_csv, write_parquet
from demoscope.report.summary import CONSISTENCY_CHECKS, consistency_section, lens_section, sae_quality_section, skipped_section, spearman_table, summary_sections, task_section, to_html, to_markdown

params = snakemake.params
keys = params.inputs_of
inputs = snakemake.input


def tagged(table: pl.DataFrame, tags: dict) -> pl.DataFrame:
    return table.with_columns(*[pl.lit(value, pl.String).alias(name) for name, value in tags.items()])


task_keys = [(k["model"], k["task"]) for k in keys["tasks"]]
quality = {key: read_table(path) for key, path in zip(task_keys, inputs.quality)}
reliability = pl.concat(
    [tagged(read_table(path), {"model": m, "task": t}) for (m, t), path in zip(task_keys, inputs.reliability)],
    how="vertical_relaxed",
)
reliability = reliability.select("model", "task", pl.exclude("model", "task"))
# The family's null: per model and task, the largest |rho| of its stores per permutation,
# consistency-check stores left out.
null_parts: dict[tuple[str, str], list[pl.DataFrame]] = {}
parts = []
for store, rho_path, null_path in zip(keys["stores"], inputs.correlations, inputs.nulls):
    parts.append((store, pl.read_parquet(rho_path)))
    if store["mask"] not in CONSISTENCY_CHECKS:
        null_parts.setdefault((store["model"], store["task"]), []).append(read_table(null_path))
nulls = {key: family_null(tables)["max_abs_rho"].to_numpy() for key, tables in null_parts.items()}
table = spearman_table(parts, nulls, params.bound, params.alpha)
top = headline(
    table, nulls, reliability, {key: len(q) for key, q in quality.items()}, params.bound, params.alpha, params.power
)
write_csv(table, snakemake.output.csv)
write_parquet(table, snakemake.output.parquet)
write_csv(top, snakemake.output.headline)
write_csv(reliability, snakemake.output.reliability)
null_table = pl.concat(
    [pl.DataFrame({"model": m, "task": t, "permutation": range(len(v)), "max_abs_rho": v}) for (m, t), v in nulls.items()]
)
write_parquet(null_table, snakemake.output.null)
skipped = {key: read_table(path) for key, path in zip(task_keys, inputs.skipped)}
sae_quality = [tagged(read_table(path), k) for k, path in zip(keys["sae_quality"], inputs.sae_quality)]
sae_quality = pl.concat(sae_quality) if sae_quality else pl.DataFrame()
if not sae_quality.is_empty():
    where = ["model", "task", "mask", "site"]
    sae_quality = sae_quality.select(*where, *[c for c in sae_quality.columns if c not in where])
sections = summary_sections(table, top, quality, params.alpha, reliability)
task_parts = [tagged(read_table(p), k) for k, p in zip(keys["task_spearman"], inputs.task_spearman)]
task = task_section(pl.concat(task_parts) if task_parts else None, top)
sections += [
    lens_section(table, params.alpha),
    consistency_section(table),
    sae_quality_section(sae_quality),
    task,
    skipped_section(skipped),
    contamination_section({key: read_table(path) for key, path in zip(task_keys, inputs.contamination)}),
]
Path(snakemake.output.summary).write_text(to_markdown(sections))
Path(snakemake.output.html).write_text(to_html(sections))
