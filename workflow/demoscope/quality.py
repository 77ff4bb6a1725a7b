"""Example quality: each candidate's 1-shot accuracy on the quality queries.

This is the "OneShot" score of Chang & Jia (2023). Alongside accuracy we keep
the mean log-prob of the gold answer as a smooth companion, and for options
of several tokens both the summed and the length-normalised variants.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .scoring import score_options
from .templates import Template
from .tokens import encode_text

QUALITY_METRICS = ("accuracy", "gold_logprob", "accuracy_norm", "gold_logprob_norm")


def encode_queries(tokenizer, template: Template, queries: pl.DataFrame) -> tuple[list, list]:
    """Token ids of separator+query and of each answer_prefix+option, per query."""
    q_ids = [encode_text(tokenizer, template.separator + q, first=False) for q in queries["query"]]
    o_ids = [
        [encode_text(tokenizer, template.answer_prefix + o, first=False) for o in opts]
        for opts in queries["options"].to_list()
    ]
    for q, opts in enumerate(o_ids):
        if any(len(o) == 0 for o in opts):
            raise ValueError(f"quality query {q}: an option encodes to no tokens")
    return q_ids, o_ids


def summarise(option_lp: np.ndarray, option_len: np.ndarray, gold: np.ndarray) -> dict[str, np.ndarray]:
    """Per-prefix metrics from (prefixes, queries, options) summed log-probs."""
    normed = option_lp / option_len[None]
    filled = np.where(np.isnan(option_lp), -np.inf, option_lp)
    filled_norm = np.where(np.isnan(normed), -np.inf, normed)
    q = np.arange(len(gold))
    return {
        "accuracy": (filled.argmax(-1) == gold[None]).mean(-1),
        "accuracy_norm": (filled_norm.argmax(-1) == gold[None]).mean(-1),
        "gold_logprob": option_lp[:, q, gold].mean(-1),
        "gold_logprob_norm": normed[:, q, gold].mean(-1),
    }


def option_lengths(o_ids: list[list[list[int]]], n_opts: int) -> np.ndarray:
    lengths = np.full((len(o_ids), n_opts), np.nan)
    for q, opts in enumerate(o_ids):
        lengths[q, : len(opts)] = [len(o) for o in opts]
    return lengths


def score_quality(
    model, tokenizer, template: Template, candidates: pl.DataFrame, queries: pl.DataFrame, device: str,
    batch_tokens: int,
) -> pl.DataFrame:
    prefix_text = (template.instruction + template.separator) if template.instruction else ""
    prefixes = [encode_text(tokenizer, prefix_text + d, first=True) for d in candidates["demonstration"]]
    q_ids, o_ids = encode_queries(tokenizer, template, queries)
    option_lp = score_options(model, prefixes, q_ids, o_ids, device, tokenizer.pad_token_id, batch_tokens)
    metrics = summarise(option_lp, option_lengths(o_ids, option_lp.shape[-1]), queries["gold_index"].to_numpy())
    return pl.DataFrame(
        {
            "cand_id": candidates["cand_id"],
            "label": candidates["label"],
            **{name: metrics[name] for name in QUALITY_METRICS},
            "n_queries": [len(queries)] * len(candidates),
        }
    )
