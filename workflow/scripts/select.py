from checkout import log_to

log_to(snakemake.log[0])

import sys

from demoscope.parquet import read_table, write_parquet
from demoscope.selection.choose import label_free, select
from demoscope.selection.sets import write_sets
from demoscope.selection.strategies import strategy

spec = dict(snakemake.params.strategy)
settings = dict(spec)  # what the sets files record
candidates = read_table(snakemake.input.candidates)
# The test queries' label-free columns only: ids, input and query text, options.
queries = label_free(read_table(snakemake.input.queries))
# Only the signal tables this strategy's rule lists are read.
signals = {
    name: read_table(path)
    for name, path in snakemake.input.items()
    if name not in ("candidates", "queries", "model")
}
scorer = None
if strategy(spec["kind"]).loads_model:
    from demoscope.lm import modeljob
    from demoscope.lm.lmscore import LMScorer
    from demoscope.data.templates import Template

    model, tokenizer, device = modeljob.start(snakemake, dtype=spec.pop("dtype"))
    compute = snakemake.config["compute"]
    scorer = LMScorer(
        model, tokenizer, Template.from_config(spec.pop("template")), candidates, queries, device,
        compute["batch_tokens"],
    )
table = select(
    spec,
    candidates,
    spec.pop("k"),
    spec.pop("label_balance"),
    spec.pop("run_seed", 0),
    queries=queries,
    scorer=scorer,
    **signals,
)
print(f"{snakemake.wildcards.strategy}: {table['detail'][0]}", file=sys.stderr)
write_parquet(table, snakemake.output.selection)
write_sets(snakemake.output.jsonl, snakemake.output.lm_eval, snakemake.wildcards.strategy, settings, table, candidates, queries)
