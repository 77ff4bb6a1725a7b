from checkout import log_to

log_to(snakemake.log[0])

import sys

from transformers import AutoTokenizer

from demoscope.parquet import read_table, write_parquet
from demoscope.data.records import Skipped
from demoscope.lenses.sae.pool import draw_pool
from demoscope.data.tasks import load_split
from demoscope.data.templates import Template

params = snakemake.params
task = params.task
train = load_split(task, "train", params.data_dir, Skipped() if params.bad_records == "skip" else None)
candidates = read_table(snakemake.input.candidates)
pool = draw_pool(
    train,
    set(candidates["record_id"].to_list()),
    params.pool,
    params.held_out,
    params.seed,
    Template.from_config(task.get("template")),
    AutoTokenizer.from_pretrained(snakemake.input.model),
)
write_parquet(pool, snakemake.output[0])
held = int(pool["held_out"].sum())
print(
    f"SAE pool: {len(pool) - held} training and {held} held-out train records (none a candidate), "
    f"{int(pool['n_tokens'].sum())} tokens",
    file=sys.stderr,
)
