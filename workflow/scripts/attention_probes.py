from checkout import log_to

log_to(snakemake.log[0])

import sys

import polars as pl

from demoscope.attention import (
    CALIBRATION_SEED_OFFSET,
    PROBE_SEED_OFFSET,
    content_ids,
    draw_records,
)
from demoscope.parquet import read_table, write_parquet
from demoscope.records import Skipped
from demoscope.tasks import load_split
from demoscope.templates import Template

params = snakemake.params
task = params.task
template = Template.from_config(task.get("template"))
train = load_split(task, "train", params.data_dir, Skipped() if params.bad_records == "skip" else None)
# Neither a candidate nor (by content) a quality query: the lens must not read the outcome.
taken = set(read_table(snakemake.input.candidates)["record_id"].to_list())
taken |= content_ids(train, read_table(snakemake.input.queries))
probes = draw_records(
    train, taken, params.probes, params.seed, PROBE_SEED_OFFSET,
    "attention.probes (train records that are neither candidates nor quality queries)", template, query=True,
)
taken |= set(probes["record_id"].to_list())
n = params.calibration
demos = draw_records(
    train, taken, n, params.seed, CALIBRATION_SEED_OFFSET,
    "attention.calibration demonstrations (train records not candidates, quality queries or probes)", template,
    query=False,
)
taken |= set(demos["record_id"].to_list())
queries = draw_records(
    train, taken, n, params.seed, CALIBRATION_SEED_OFFSET + 1,
    "attention.calibration queries (train records not candidates, quality queries, probes or calibration demonstrations)",
    template, query=True,
)
write_parquet(probes, snakemake.output.probes)
roles = pl.Series("role", ["demonstration"] * demos.height + ["query"] * queries.height)
write_parquet(demos.vstack(queries).with_columns(roles), snakemake.output.calibration)
print(f"attention lens: {probes.height} probe queries, {n} + {n} calibration records", file=sys.stderr)
