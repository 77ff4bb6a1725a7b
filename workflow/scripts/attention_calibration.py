from checkout import log_to

log_to(snakemake.log[0])

import sys

import polars as pl

from demoscope.data.lens_records import CALIBRATION_SEED_OFFSET, content_ids, draw_records
from demoscope.parquet import read_table, write_parquet
from demoscope.data.records import Skipped
from demoscope.data.tasks import load_split
from demoscope.data.templates import Template

params = snakemake.params
task = params.task
template = Template.from_config(task.get("template"))
train = load_split(task, "train", params.data_dir, Skipped() if params.bad_records == "skip" else None)
# Neither a candidate nor (by content) a quality or probe query: the lens must not read the
# outcome, and the head it picks must not have seen the probes it is measured on.
taken = set(read_table(snakemake.input.candidates)["record_id"].to_list())
taken |= content_ids(train, read_table(snakemake.input.queries))
taken |= content_ids(train, read_table(snakemake.input.probes))
n = params.calibration
demos = draw_records(
    train, taken, n, params.seed, CALIBRATION_SEED_OFFSET,
    "attention.calibration demonstrations (train records not candidates, quality or probe queries)", template,
    query=False,
)
taken |= set(demos["record_id"].to_list())
queries = draw_records(
    train, taken, n, params.seed, CALIBRATION_SEED_OFFSET + 1,
    "attention.calibration queries (train records not candidates, quality or probe queries, or calibration "
    "demonstrations)",
    template, query=True,
)
roles = pl.Series("role", ["demonstration"] * demos.height + ["query"] * queries.height)
write_parquet(demos.vstack(queries).with_columns(roles), snakemake.output[0])
print(f"attention lens: {n} + {n} calibration records", file=sys.stderr)
