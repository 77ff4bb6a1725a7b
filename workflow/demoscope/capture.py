"""Forward hooks that capture a site's output in every decoder layer.

Sites:
- `mlp_out`: the tensor the MLP block returns (after the down projection,
  before it is added to the residual stream), the study's signal;
- `resid`: the decoder layer's output hidden state, where Sun et al. (2024)
  measured massive activations.
"""

from __future__ import annotations

from contextlib import contextmanager

from .models import decoder_layers

SITES = ("mlp_out", "resid")


def _site_module(layer, site: str):
    if site == "mlp_out":
        return layer.mlp
    if site == "resid":
        return layer
    raise ValueError(f"unknown site {site!r}; allowed: {list(SITES)}")


@contextmanager
def capture(model, site: str, layers: list[int] | None = None):
    """Yield a dict layer -> last captured tensor (batch, seq, hidden), filled on each forward."""
    with capture_sites(model, [site], layers) as captured:
        yield captured[site]


@contextmanager
def capture_sites(model, sites: list[str], layers: list[int] | None = None):
    """Yield a dict site -> layer -> last captured tensor: one forward fills every site."""
    all_layers = decoder_layers(model)
    chosen = range(len(all_layers)) if layers is None else layers
    captured: dict[str, dict[int, object]] = {site: {} for site in sites}
    handles = []
    try:
        for site in sites:
            for index in chosen:

                def hook(module, args, output, into=captured[site], index=index):
                    into[index] = output[0] if isinstance(output, tuple) else output

                handles.append(_site_module(all_layers[index], site).register_forward_hook(hook))
        yield captured
    finally:
        for handle in handles:
            handle.remove()
