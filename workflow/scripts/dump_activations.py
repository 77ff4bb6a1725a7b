from checkout import log_to

log_to(snakemake.log[0])

from demoscope.parquet import read_table
from demoscope.lm import modeljob
from demoscope.activations.dump import dump_activations, resolve_store_dtype
from demoscope.data.sampling import balanced_head
from demoscope.data.templates import Template

compute = snakemake.config["compute"]
context = dict(snakemake.params.context)
if "n_queries" in context:
    queries = read_table(snakemake.input.queries)
    wanted = context.pop("n_queries")
    chosen = balanced_head(queries["label"].to_list(), wanted)
    if len(chosen) < wanted:
        raise ValueError(
            f"query_mask.queries: {wanted} queries asked for, {snakemake.input.queries} holds {len(queries)}"
        )
    context["queries"] = queries["query"].gather(chosen).to_list()
model, tokenizer, device = modeljob.start(snakemake)
dump_activations(
    model,
    tokenizer,
    read_table(snakemake.input.candidates)["demonstration"].to_list(),
    # Every site of this mask from one forward, each into its own store.
    list(snakemake.output),
    site=list(snakemake.params.sites),
    device=device,
    store_dtype=resolve_store_dtype(snakemake.params.store_dtype, device),
    mask=snakemake.wildcards.mask,
    batch_tokens=compute["batch_tokens"],
    chunk_tokens=compute["chunk_tokens"],
    attrs={
        "model": snakemake.wildcards.model,
        "task": snakemake.wildcards.task,
        "model_dtype": str(model.dtype),
        "context": snakemake.params.context,
        "template_hash": Template.from_config(
            snakemake.config["tasks"][snakemake.wildcards.task].get("template")
        ).digest(),
    },
    **context,
)
