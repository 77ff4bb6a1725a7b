from checkout import log_to

log_to(snakemake.log[0])

import json

from demoscope.lenses.features import compute_features
from demoscope.parquet import write_parquet
from demoscope.activations.store import open_store

skip = bool(snakemake.params.skip_first_token)
store = open_store(snakemake.input[0])
features = compute_features(store, snakemake.params.threshold, snakemake.params.ratio, skip_first_token=skip)
# The footer says which tokens the moments read, and what the store was.
write_parquet(
    features,
    snakemake.output[0],
    metadata={
        "demoscope.skip_first_token": json.dumps(skip),
        "demoscope.store_attrs": json.dumps(
            {k: store.attrs.get(k) for k in ("mask", "site", "dtype")}
        ),
    },
)
