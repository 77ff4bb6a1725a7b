from checkout import log_to

log_to(snakemake.log[0])

from demoscope.lm import modeljob
from demoscope.lenses.controls import control_table
from demoscope.parquet import read_table, write_parquet
from demoscope.data.templates import Template

compute = snakemake.config["compute"]
params = snakemake.params
model, tokenizer, device = modeljob.start(snakemake)
table = control_table(
    model,
    tokenizer,
    Template.from_config(params.template),
    read_table(snakemake.input.candidates),
    read_table(snakemake.input.queries),
    params.kind,
    device,
    compute["batch_tokens"],
)
write_parquet(table, snakemake.output[0])
