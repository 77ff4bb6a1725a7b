from checkout import log_to

log_to(snakemake.log[0])

import polars as pl

from demoscope.lm import jobclock, modeljob
from demoscope.parquet import write_parquet
from demoscope.lenses.sae.published import load_any
from demoscope.lenses.sae.features import sae_features
from demoscope.activations.store import open_store

modeljob.torch_threads(snakemake)
params = snakemake.params
store = open_store(snakemake.input.store)
outside = [layer for layer in params.layers if not 0 <= layer < store.n_layers]
if outside:
    raise ValueError(
        f"sae.layers: {outside} are outside the store {snakemake.input.store}, whose model has {store.n_layers} layers"
    )
directories = dict(zip(params.layers, map(str, snakemake.input.saes)))
# A published SAE must have been trained on this model, at this site and layer.
saes = {
    layer: load_any(path, snakemake.wildcards.site, layer, params.model_source)
    for layer, path in directories.items()
}
jobclock.work_starts()
features, quality = sae_features(store, saes, params.top_latents, params.skip_first)
write_parquet(features, snakemake.output.features)
quality = quality.with_columns(sae_dir=pl.Series([directories[layer] for layer in quality["layer"]]))
write_parquet(quality, snakemake.output.quality)
