"""Forward hooks that capture a site's output in every decoder layer.

Sites:
- `mlp_out`: the MLP block's contribution to the residual stream, the study's signal: the
  tensor added to the residual stream after the MLP. For Llama, Qwen2, Mistral and the like
  that is what `layer.mlp` returns (after the down projection). Gemma-2/3 (and OLMo-2) apply
  `post_feedforward_layernorm` to the MLP's output before the add, so there it is that
  norm's output: in every family, resid_after = resid_mid + mlp_out.
- `resid`: the decoder layer's output hidden state, where Sun et al. (2024)
  measured massive activations.
"""

from __future__ import annotations

from contextlib import contextmanager

from demoscope.lm.models import decoder_layers



def _mlp_out(layer):
    # A norm between the MLP and the residual add (Gemma-2/3, OLMo-2): the added tensor is its output.
    post = getattr(layer, "post_feedforward_layernorm", None)
    return layer.mlp if post is None else post


def _resid(layer):
    return layer


# The site registry: site -> the module of a decoder layer whose output is captured. A new site
# is one function and one entry here, and its name in the schema's site enums (a test compares).
SITES = {"mlp_out": _mlp_out, "resid": _resid}


def _site_module(layer, site: str):
    if site not in SITES:
        raise ValueError(f"unknown site {site!r}; allowed: {list(SITES)}")
    return SITES[site](layer)


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
