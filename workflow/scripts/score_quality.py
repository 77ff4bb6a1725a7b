from checkout import log_to

log_to(snakemake.log[0])

from demoscope.lm import modeljob
from demoscope.parquet import read_table, write_parquet
from demoscope.quality.oneshot import quality_tables
from demoscope.quality.shards import shard_rows
from demoscope.data.templates import Template

compute = snakemake.config["compute"]
candidates = shard_rows(
    read_table(snakemake.input.candidates),
    int(snakemake.wildcards.shard),
    snakemake.params.shards,
)
model, tokenizer, device = modeljob.start(snakemake)
quality, by_query = quality_tables(
    model,
    tokenizer,
    Template.from_config(snakemake.params.template),
    candidates,
    read_table(snakemake.input.queries),
    device,
    compute["batch_tokens"],
    kind=snakemake.params.kind,
    generation=snakemake.params.generation,
)
write_parquet(by_query, snakemake.output.by_query)
write_parquet(quality, snakemake.output.quality)
