from checkout import log_to

log_to(snakemake.log[0])

from demoscope.lm import modeljob
from demoscope.parquet import read_table, write_parquet
from demoscope.data.templates import Template
from demoscope.lm.zeroshot import zero_shot_uncertainty

compute = snakemake.config["compute"]
params = snakemake.params
model, tokenizer, device = modeljob.start(snakemake)
table = zero_shot_uncertainty(
    model,
    tokenizer,
    Template.from_config(params.template),
    read_table(snakemake.input.candidates),
    device,
    compute["batch_tokens"],
    generation=params.generation,
)
write_parquet(table, snakemake.output[0])
