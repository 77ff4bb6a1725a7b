"""The task-vector lens: how close a candidate's 1-shot prompt state is to the task's mean state.

Hendel et al. (2023) and Todd et al. (2024) found that an in-context prompt compresses the task
into the residual stream at the prompt's last token (a "task vector"; a function vector is a
sum over a few heads). A demonstration that prompts the task well should move that state
towards where the task's demonstrations, on average, put it.

The prompt of candidate i is its 1-shot prefix as quality scores it, up to where the query
would begin: `instruction + separator + demonstration_i + separator` (no instruction: the
demonstration and the separator). Its last token is the separator's last token: the position
that has read the whole demonstration and from which the model reads the next query. No query
is part of it, so the lens cannot read the answer to a quality query (SCIENCE.md, "No lens may
read the outcome"); Hendel et al. read the state at the query's last token, which needs the
lens's own probe queries.

For every decoder layer l, with h_i(l) the residual stream (the decoder layer's output, the
`resid` site) at that token:

- `tv_cosine`: cosine between h_i(l) and the task's mean vector m(l), the mean of h_j(l) over a
  pool of train demonstrations that are not candidates (label-balanced, seeded), rendered the
  same way;
- `tv_norm`: |h_i(l)|.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from demoscope.activations.capture import capture
from demoscope.lenses.names import TASK_VECTOR as FEATURES  # noqa: F401  (the columns features() writes)
from demoscope.lm.models import decoder_layers
from demoscope.data.templates import Template
from demoscope.lm.tokens import encode_text, length_batches, pad_batch

# Drawn without a model (lens_records.py), here too for the lens's callers.
from demoscope.data.lens_records import POOL_SEED_OFFSET, draw_pool  # noqa: E402,F401


def prompt_text(template: Template, demonstration: str) -> str:
    head = template.instruction + template.separator if template.instruction else ""
    return head + demonstration + template.separator


@torch.no_grad()
def last_token_states(model, tokenizer, template: Template, demonstrations: list[str], device: str,
                      batch_tokens: int) -> np.ndarray:
    """(demonstrations, layers, hidden) float32: each decoder layer's output at the prompt's
    last token. Right padding: a causal model's real tokens never see the padding after them."""
    ids = [encode_text(tokenizer, prompt_text(template, d), first=True) for d in demonstrations]
    n_layers = len(decoder_layers(model))
    out = None
    with capture(model, "resid") as captured:
        for batch in length_batches([len(s) for s in ids], batch_tokens):
            tokens, mask = pad_batch([ids[i] for i in batch], tokenizer.pad_token_id, left=False)
            model(input_ids=tokens.to(device), attention_mask=mask.to(device), use_cache=False)
            last = (mask.sum(dim=1) - 1).to(device)
            rows = torch.arange(len(batch), device=device)
            states = torch.stack([captured[layer][rows, last] for layer in range(n_layers)], dim=1)
            if out is None:
                out = np.zeros((len(ids), n_layers, states.shape[-1]), dtype=np.float32)
            out[batch] = states.float().cpu().numpy()
    return out


def features(cand_ids: list[int], candidates: np.ndarray, pool: np.ndarray) -> pl.DataFrame:
    """One row per candidate and layer: tv_cosine to the pool's mean vector, tv_norm."""
    mean = pool.astype(np.float64).mean(axis=0)  # layers x hidden
    states = candidates.astype(np.float64)
    norm = np.linalg.norm(states, axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = (states * mean[None]).sum(axis=2) / (norm * np.linalg.norm(mean, axis=1)[None])
    n, layers = norm.shape
    return pl.DataFrame(
        {
            "cand_id": np.repeat(np.asarray(cand_ids, dtype=np.int64), layers),
            "layer": np.tile(np.arange(layers, dtype=np.int64), n),
            "tv_cosine": cosine.ravel(),
            "tv_norm": norm.ravel(),
        }
    )
