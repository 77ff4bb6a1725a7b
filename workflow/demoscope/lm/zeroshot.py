"""Zero-shot predictive uncertainty of each candidate, the signal of uncertainty sampling.

Each candidate's input is asked as a zero-shot query: the prompt is the instruction and the
separator (when the task has an instruction) and the candidate's input in the query template,
encoded as one text; its answer is never shown. For classification and multiple choice the
model's distribution over the task's options is the softmax of the options' summed
log-probs, and `uncertainty` is its entropy divided by log(number of options), so questions
with more options are not more uncertain by construction (`entropy` keeps the raw value, in
nats). For generation tasks `uncertainty` is the entropy of the next-token distribution where
the answer starts.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from demoscope.lm.embeddings import candidate_texts
from demoscope.lm.models import backbone
from demoscope.lm.prefixcache import run_prefix
from demoscope.lm.promptbuilder import PromptBuilder
from demoscope.lm.scoring import score_options
from demoscope.data.templates import Template
from demoscope.lm.tokens import length_batches


def option_entropy(option_lp: np.ndarray) -> np.ndarray:
    """Entropy (nats) of the softmax over each row's present (non-NaN) options."""
    lp = np.where(np.isnan(option_lp), -np.inf, option_lp)
    lp = lp - lp.max(axis=-1, keepdims=True)
    p = np.exp(lp)
    p /= p.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)


def zero_shot_prompts(tokenizer, template: Template, candidates: pl.DataFrame) -> list[list[int]]:
    builder = PromptBuilder(tokenizer, template)
    prompts = [p.ids for p in builder.build_many([([], text, None) for text in candidate_texts(template, candidates)])]
    if any(len(p) < 2 for p in prompts):
        raise ValueError("zero-shot: a candidate's prompt has fewer than two tokens")
    return prompts


@torch.inference_mode()
def next_token_entropy(model, prompts: list[list[int]], device: str, pad_id: int, batch_tokens: int) -> np.ndarray:
    """Entropy (nats) of the next-token distribution after each prompt; only the last
    position goes through the vocabulary projection."""
    body, out = backbone(model), np.empty(len(prompts))
    for rows in length_batches([len(p) for p in prompts], batch_tokens):
        # Left-padded: every prompt's last token is in the last column.
        forward, _ = run_prefix(body, [prompts[i] for i in rows], pad_id, device, use_cache=False)
        hidden = forward.last_hidden_state
        lp = torch.log_softmax(model.get_output_embeddings()(hidden[:, -1]).float(), dim=-1)
        out[rows] = (-(lp.exp() * lp).sum(-1)).cpu().double().numpy()
    return out


def zero_shot_uncertainty(
    model, tokenizer, template: Template, candidates: pl.DataFrame, device: str, batch_tokens: int, generation: bool,
) -> pl.DataFrame:
    """cand_id, entropy (nats), n_options (0 for generation) and uncertainty (the score the
    selector ranks)."""
    prompts = zero_shot_prompts(tokenizer, template, candidates)
    if generation:
        entropy = next_token_entropy(model, prompts, device, tokenizer.pad_token_id, batch_tokens)
        n_options = np.zeros(len(prompts), dtype=np.int64)
        uncertainty = entropy
    else:
        options = PromptBuilder(tokenizer, template).options(
            candidate_texts(template, candidates), candidates["options"].to_list(), what="candidate"
        )
        # Prompt minus its last token is the "prefix", the last token the "query": the model
        # reads exactly the prompt's tokens, and each candidate is one (prefix, query) pair.
        lp = score_options(
            model, [p[:-1] for p in prompts], [p[-1:] for p in prompts], options, device, tokenizer.pad_token_id,
            batch_tokens, pairs=[(i, i) for i in range(len(prompts))],
        )
        entropy = option_entropy(lp)
        n_options = np.array([len(o) for o in options], dtype=np.int64)
        uncertainty = entropy / np.log(n_options)
    return pl.DataFrame(
        {"cand_id": candidates["cand_id"], "entropy": entropy, "n_options": n_options, "uncertainty": uncertainty}
    )
