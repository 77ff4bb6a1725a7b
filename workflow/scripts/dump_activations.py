from checkout import log_to

log_to(snakemake.log[0])

import polars as pl
import torch

from demoscope import models
from demoscope.dump import dump_activations, resolve_store_dtype
from demoscope.templates import Template

torch.set_num_threads(snakemake.threads)
compute = snakemake.config["compute"]
model, tokenizer, device = models.load(snakemake.input.model, compute["device"], snakemake.params.dtype)
candidates = pl.read_parquet(snakemake.input.candidates)
dump_activations(
    model,
    tokenizer,
    candidates["demonstration"].to_list(),
    snakemake.output[0],
    site=snakemake.wildcards.site,
    device=device,
    store_dtype=resolve_store_dtype(snakemake.params.store_dtype, device),
    batch_tokens=compute["batch_tokens"],
    chunk_tokens=compute["chunk_tokens"],
    attrs={
        "model": snakemake.wildcards.model,
        "task": snakemake.wildcards.task,
        "mask": snakemake.wildcards.mask,
        "model_dtype": str(model.dtype),
        "template_hash": Template.from_config(snakemake.params.template).digest(),
    },
)
