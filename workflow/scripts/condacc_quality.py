from checkout import log_to

log_to(snakemake.log[0])

import sys
import time

from demoscope.lm import modeljob
from demoscope.quality.condacc import score_condacc
from demoscope.parquet import read_table, write_parquet
from demoscope.data.templates import Template

compute = snakemake.config["compute"]
params = snakemake.params
model, tokenizer, device = modeljob.start(snakemake)
began = time.perf_counter()
quality, outcomes, by_query = score_condacc(
    model,
    tokenizer,
    Template.from_config(params.template),
    read_table(snakemake.input.candidates),
    read_table(snakemake.input.queries),
    params.condacc["k"],
    params.condacc["sets"],
    params.seed,
    device,
    compute["batch_tokens"],
    kind=params.kind,
    generation=params.generation,
)
write_parquet(quality, snakemake.output.quality)
write_parquet(outcomes, snakemake.output.prompts)
write_parquet(by_query, snakemake.output.by_query)
print(
    f"CondAcc: {outcomes['prompt_id'].n_unique()} prompts of k={params.condacc['k']} x "
    f"{outcomes['query_id'].n_unique()} queries in {time.perf_counter() - began:.1f} s",
    file=sys.stderr,
)
