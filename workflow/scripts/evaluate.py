from checkout import log_to

log_to(snakemake.log[0])

import sys

import polars as pl

from demoscope.lm import modeljob
from demoscope.selection.evaluation import evaluate_selection
from demoscope.parquet import read_table, write_parquet
from demoscope.data.templates import Template

compute = snakemake.config["compute"]
params = snakemake.params
model, tokenizer, device = modeljob.start(snakemake)
template = Template.from_config(params.template)
candidates = read_table(snakemake.input.candidates)
queries = read_table(snakemake.input.queries)
# The rule lists strategies, selections and tables in the same order; each strategy is
# evaluated on its own, so its table does not depend on which other strategies the run has.
for strategy, source, target in zip(params.strategies, snakemake.input.selections, snakemake.output, strict=True):
    selection = read_table(source)
    table = evaluate_selection(
        model, tokenizer, template, candidates, queries, selection, device, compute["batch_tokens"], params.generation
    )
    table = table.with_columns(pl.lit(selection["detail"][0]).alias("detail"))
    print(f"{strategy}: accuracy {table['correct'].mean():.4f} on {table.height} queries", file=sys.stderr)
    write_parquet(table, target)
