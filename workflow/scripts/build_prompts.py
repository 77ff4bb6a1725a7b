from checkout import log_to

log_to(snakemake.log[0])

import sys

from transformers import AutoTokenizer

from demoscope.prompts import build_prompt_tables
from demoscope.tasks import load_split
from demoscope.templates import Template
from demoscope.parquet import write_parquet

task = snakemake.params.task
splits = {s: load_split(task, s, snakemake.params.data_dir) for s in ("train", "dev", "test")}
tables = build_prompt_tables(
    splits,
    Template.from_config(task.get("template")),
    task["sizes"],
    snakemake.params.seed,
    AutoTokenizer.from_pretrained(snakemake.input.model),
)
for name, table in tables.items():
    write_parquet(table, snakemake.output[name])
    print(f"{name}: {len(table)} rows", file=sys.stderr)
