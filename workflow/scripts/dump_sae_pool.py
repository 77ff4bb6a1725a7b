from checkout import log_to

log_to(snakemake.log[0])

from demoscope.lm import modeljob
from demoscope.activations.dump import dump_activations, resolve_store_dtype
from demoscope.lm.models import decoder_layers
from demoscope.parquet import read_table

compute = snakemake.config["compute"]
wildcards = snakemake.wildcards
model, tokenizer, device = modeljob.start(snakemake)
layers = list(snakemake.params.layers)
depth = len(decoder_layers(model))
outside = [layer for layer in layers if not 0 <= layer < depth]
if outside:
    raise ValueError(
        f"sae.layers: {outside} are outside model '{wildcards.model}', which has {depth} decoder layers (0..{depth - 1})"
    )
dump_activations(
    model,
    tokenizer,
    read_table(snakemake.input.pool)["demonstration"].to_list(),
    snakemake.output[0],
    site=wildcards.site,
    device=device,
    store_dtype=resolve_store_dtype(snakemake.params.store_dtype, device),
    mask="causal",
    batch_tokens=compute["batch_tokens"],
    chunk_tokens=compute["chunk_tokens"],
    attrs={"model": wildcards.model, "task": wildcards.task, "model_dtype": str(model.dtype), "role": "sae_pool"},
    layers=layers,
)
