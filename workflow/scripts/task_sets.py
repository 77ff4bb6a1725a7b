from checkout import log_to

log_to(snakemake.log[0])

import sys

from demoscope.lm import modeljob
from demoscope.selection.evaluation import score_pairs
from demoscope.parquet import read_table, write_parquet
from demoscope.stats.taskcorr import random_sets, set_table
from demoscope.data.templates import Template

compute = snakemake.config["compute"]
params = snakemake.params
model, tokenizer, device = modeljob.start(snakemake)
candidates = read_table(snakemake.input.candidates)
labels = candidates["label"].to_numpy() if params.label_balance else None
sets = random_sets(candidates["cand_id"].to_numpy(), params.k, params.sets, params.seed, labels)
# Every set against every test query: one prefix per set, its KV cache shared by the queries.
scored = score_pairs(
    model,
    tokenizer,
    Template.from_config(params.template),
    candidates,
    read_table(snakemake.input.queries),
    sets,
    None,
    device,
    compute["batch_tokens"],
    params.generation,
)
table = set_table(sets, scored["correct"], scored["gold_logprob"])
print(f"{len(sets)} sets: accuracy {table['accuracy'].min():.3f}..{table['accuracy'].max():.3f}", file=sys.stderr)
write_parquet(table, snakemake.output[0])
