"""The attention lens (query-conditioned): how much a probe query attends to the demonstration.

Kato et al. (2025) found that the attention of an "induction" head from the query's last token
to the demonstrations' label tokens tracks in-context accuracy. Per candidate i, demoscope runs
its 1-shot prompt with each of the task's probe queries (`prompts/probe_queries.parquet`, the
query mask's: never a candidate, quality or test query, so the lens never reads a quality query's
answer):

    instruction + separator + demonstration_i + separator + probe query

tokenised as quality tokenises it (prefix with special tokens, then `separator + query`
without). At every layer and head it reads the attention weights from the prompt's last token
(eager attention: the fused kernels return no weights) and sums them over

- the demonstration's tokens (`attn_demo`), and
- its answer ("label") tokens: those whose characters overlap the answer's characters in the
  rendered demonstration (`attn_label`),

then averages over the heads of the layer and over the probes: one row per candidate x layer.

**Best head.** On a calibration set of train records that are neither candidates nor (by
content) quality or probe queries, every pair (calibration demonstration, calibration query) with the same
label (any pair for tasks without labels) is run the same way; the head with the largest mean
attention from the query's last token to the demonstration's answer tokens (then: the correct
label's tokens) is the task's best head, ties to the lower (layer, head). No candidate enters
the choice. At that head, per candidate (mean over probes):

- `attn_label_head`: the attention mass to the label tokens;
- `kato_affinity`: the mean over label tokens of the cosine between the query's last-token
  query vector and the label token's key vector at that head (the attention module's own
  q_proj and k_proj applied to its input, before rotary position embeddings: a content
  affinity that does not depend on how far apart the tokens are).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from demoscope.lm.models import decoder_layers
from demoscope.data.templates import Template
from demoscope.lm.tokens import encode_text, length_batches, pad_batch

# Drawn without a model (lens_records.py), here too for the lens's callers.
from demoscope.data.lens_records import CALIBRATION_SEED_OFFSET, content_ids, draw_records  # noqa: E402,F401


def encode_prompt(tokenizer, template: Template, demonstration: str, answer: str, query: str):
    """(token ids, demonstration token positions, label token positions) of one 1-shot prompt."""
    head = template.instruction + template.separator if template.instruction else ""
    prefix = head + demonstration
    encoded = tokenizer(prefix, add_special_tokens=True, return_offsets_mapping=True)
    start = len(head)
    answer_at = demonstration.rfind(answer) if answer else -1
    label_lo, label_hi = (start + answer_at, start + answer_at + len(answer)) if answer_at >= 0 else (0, 0)
    demo, label = [], []
    for t, (lo, hi) in enumerate(encoded["offset_mapping"]):
        if hi <= lo:  # special tokens
            continue
        if hi > start:
            demo.append(t)
        if lo < label_hi and hi > label_lo:
            label.append(t)
    ids = list(encoded["input_ids"]) + encode_text(tokenizer, template.separator + query, first=False)
    return ids, demo, label


@torch.no_grad()
def run_prompts(model, prompts: list[tuple[list[int], list[int], list[int]]], pad_id: int, device: str,
                batch_tokens: int, best: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Per prompt: `demo` and `label` (layers x heads) attention mass from the last token, and
    with `best` = (layer, head) the `affinity` at that head."""
    layers = decoder_layers(model)
    n_layers = len(layers)
    out = {"demo": None, "label": None, "affinity": np.full(len(prompts), np.nan)}
    captured = {}
    handle = None
    if best is not None:
        def keep_input(module, args, kwargs):
            captured["x"] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]

        handle = layers[best[0]].self_attn.register_forward_pre_hook(keep_input, with_kwargs=True)
    try:
        for batch in length_batches([len(p[0]) for p in prompts], batch_tokens):
            ids, mask = pad_batch([prompts[i][0] for i in batch], pad_id, left=False)
            result = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_attentions=True,
                           use_cache=False)
            if result.attentions is None or result.attentions[0] is None:
                raise RuntimeError("the model returned no attention weights; the attention lens needs eager attention")
            last = mask.sum(dim=1) - 1
            rows = torch.arange(len(batch))
            # layers x batch x heads x keys: the last real token's attention row.
            weights = torch.stack([a[rows.to(device), :, last.to(device)].float().cpu() for a in result.attentions])
            if out["demo"] is None:
                heads = weights.shape[2]
                out["demo"] = np.zeros((len(prompts), n_layers, heads))
                out["label"] = np.zeros((len(prompts), n_layers, heads))
            for r, i in enumerate(batch):
                _, demo, label = prompts[i]
                out["demo"][i] = weights[:, r, :, demo].sum(-1).numpy()
                out["label"][i] = weights[:, r, :, label].sum(-1).numpy() if label else np.nan
                if best is not None and label:
                    out["affinity"][i] = affinity(layers[best[0]].self_attn, captured["x"][r], int(last[r]), label,
                                                  best[1], model.config)
    finally:
        if handle is not None:
            handle.remove()
    return out


def affinity(attn, x: torch.Tensor, query_at: int, label: list[int], head: int, config) -> float:
    """Mean cosine between head `head`'s query vector at `query_at` and its key vectors at the
    label tokens: q_proj and k_proj of the attention module's input x (tokens x hidden)."""
    n_heads = config.num_attention_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    q = attn.q_proj(x[query_at]).float().view(n_heads, head_dim)[head]
    k = attn.k_proj(x[label]).float().view(len(label), n_kv, head_dim)[:, head // (n_heads // n_kv)]
    return float(torch.nn.functional.cosine_similarity(q[None], k, dim=-1).mean())


def calibration_pairs(demos: pl.DataFrame, queries: pl.DataFrame, by_label: bool) -> list[tuple[int, int]]:
    """(demo row, query row) pairs: same label when the task has labels, else every pair."""
    return [
        (d, q) for d in range(demos.height) for q in range(queries.height)
        if not by_label or demos["label"][d] == queries["label"][q]
    ]


def best_head(model, tokenizer, template: Template, demos: pl.DataFrame, queries: pl.DataFrame, by_label: bool,
              device: str, batch_tokens: int) -> tuple[int, int, np.ndarray]:
    """(layer, head, layers x heads mean label attention) on the calibration pairs."""
    pairs = calibration_pairs(demos, queries, by_label)
    if not pairs:
        raise ValueError("attention.calibration: no calibration demonstration shares a label with a calibration query")
    prompts = [encode_prompt(tokenizer, template, demos["text"][d], demos["answer"][d], queries["text"][q])
               for d, q in pairs]
    mass = np.nanmean(run_prompts(model, prompts, tokenizer.pad_token_id, device, batch_tokens)["label"], axis=0)
    flat = int(np.nanargmax(mass))  # the first maximum in (layer, head) order
    layer, head = divmod(flat, mass.shape[1])
    return layer, head, mass


def candidate_features(model, tokenizer, template: Template, candidates: pl.DataFrame, probes: pl.DataFrame,
                       best: tuple[int, int], device: str, batch_tokens: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per layer, best head): the attention features of every candidate, mean over probes."""
    prompts, owner = [], []
    for c, demo, answer in zip(candidates["cand_id"], candidates["demonstration"], candidates["answer"]):
        for query in probes["text"]:
            prompts.append(encode_prompt(tokenizer, template, demo, answer, query))
            owner.append(c)
    got = run_prompts(model, prompts, tokenizer.pad_token_id, device, batch_tokens, best)
    n_c, n_p = candidates.height, probes.height
    demo = got["demo"].reshape(n_c, n_p, *got["demo"].shape[1:])
    label = got["label"].reshape(n_c, n_p, *got["label"].shape[1:])
    n_layers = demo.shape[2]
    cand_ids = candidates["cand_id"].to_numpy().astype(np.int64)
    per_layer = pl.DataFrame(
        {
            "cand_id": np.repeat(cand_ids, n_layers),
            "layer": np.tile(np.arange(n_layers, dtype=np.int64), n_c),
            "attn_demo": demo.mean(axis=(1, 3)).ravel(),
            "attn_label": label.mean(axis=(1, 3)).ravel(),
        }
    )
    layer, head = best
    head_table = pl.DataFrame(
        {
            "cand_id": cand_ids,
            "layer": np.full(n_c, layer, dtype=np.int64),
            "head": np.full(n_c, head, dtype=np.int64),
            "attn_label_head": label[:, :, layer, head].mean(axis=1),
            "kato_affinity": got["affinity"].reshape(n_c, n_p).mean(axis=1),
        }
    )
    return per_layer, head_table
