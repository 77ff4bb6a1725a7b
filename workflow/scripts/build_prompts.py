from checkout import log_to

log_to(snakemake.log[0])

import sys

import polars as pl
from transformers import AutoTokenizer

from demoscope.lm.models import check_layers
from demoscope.parquet import write_parquet
from demoscope.data.prompts import build_prompt_tables
from demoscope.data.records import Skipped
from demoscope.data.tasks import SPLITS, has_split, load_split
from demoscope.data.templates import Template

task = snakemake.params.task
name = snakemake.wildcards.task
# The first job that reads the model's config: an SAE layer beyond its depth stops the run here,
# not after the pool dump. A check, not an input of any table, so sae.layers is read from the
# config directly and changing it reruns nothing here.
sae = snakemake.config["sae"]
if sae["stores"] and (sae["tasks"] is None or name in sae["tasks"]):
    check_layers(sae["layers"], snakemake.input.model, "sae.layers", snakemake.wildcards.model)
skipped = {split: Skipped() if snakemake.params.bad_records == "skip" else None for split in SPLITS}
# dev is optional (GSM8K has none): the quality queries are then held out of train.
present = [s for s in SPLITS if s != "dev" or has_split(task, s, snakemake.params.data_dir)]
splits = {s: load_split(task, s, snakemake.params.data_dir, skipped[s], name) for s in present}
if "dev" not in splits:
    print("no dev split: quality queries are held out of train, disjoint from the candidates", file=sys.stderr)
tables = build_prompt_tables(
    splits,
    Template.from_config(task.get("template")),
    task["sizes"],
    snakemake.params.seed,
    AutoTokenizer.from_pretrained(snakemake.input.model),
    key=f"tasks.{name}.sizes",
)
for name, table in tables.items():
    write_parquet(table, snakemake.output[name])
    print(f"{name}: {len(table)} rows", file=sys.stderr)
left_out = [(split, where, reason) for split, log in skipped.items() if log for where, reason in log.rows]
for split, where, reason in left_out:
    print(f"skipped {split} record at {where}: {reason}", file=sys.stderr)
print(f"skipped records: {len(left_out)}", file=sys.stderr)
write_parquet(
    pl.DataFrame(left_out, schema={"split": pl.String, "location": pl.String, "reason": pl.String}, orient="row"),
    snakemake.output.skipped,
)
