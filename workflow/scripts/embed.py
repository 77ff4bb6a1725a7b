from checkout import log_to

log_to(snakemake.log[0])

import sys
from functools import partial

from demoscope.lm import modeljob
from demoscope.lm.embeddings import candidate_texts, embedding_table, load_encoder, mean_pooled
from demoscope.parquet import read_table, write_parquet
from demoscope.data.templates import Template

compute = snakemake.config["compute"]
params = snakemake.params
encoder, tokenizer, device = modeljob.start(snakemake, load=partial(load_encoder, params.embedding))
candidates = read_table(snakemake.input.candidates)
# The test queries' text alone: no label, answer or gold index is read.
queries = read_table(snakemake.input.queries).select("query_id", "query")
texts = candidate_texts(Template.from_config(params.template), candidates) + queries["query"].to_list()
vectors = mean_pooled(encoder, tokenizer, texts, device, compute["batch_tokens"])
print(f"embedded {len(texts)} texts with {params.embedding}: {vectors.shape[1]} dims", file=sys.stderr)
n = len(candidates)
table = embedding_table(candidates["cand_id"], vectors[:n], queries["query_id"], vectors[n:])
write_parquet(table, snakemake.output[0])
