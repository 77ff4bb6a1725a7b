from checkout import log_to

log_to(snakemake.log[0])

from demoscope.lm import modeljob
from demoscope.parquet import read_table, write_parquet
from demoscope.lenses.task_vector import features, last_token_states
from demoscope.data.templates import Template

compute = snakemake.config["compute"]
params = snakemake.params
model, tokenizer, device = modeljob.start(snakemake)
template = Template.from_config(params.template)
candidates = read_table(snakemake.input.candidates)
pool = read_table(snakemake.input.pool)
states = {
    name: last_token_states(
        model, tokenizer, template, table["demonstration"].to_list(), device, compute["batch_tokens"]
    )
    for name, table in (("candidates", candidates), ("pool", pool))
}
table = features(candidates["cand_id"].to_list(), states["candidates"], states["pool"])
write_parquet(table, snakemake.output[0])
