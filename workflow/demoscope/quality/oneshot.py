"""Example quality: each candidate's 1-shot accuracy on the quality queries.

This is the "OneShot" score of Chang & Jia (2023). Alongside accuracy we keep
the mean log-prob of the gold answer as a smooth companion, and for options
of several tokens both the summed and the length-normalised variants.
For generation tasks (GSM8K) accuracy is the exact match of the greedy
output's final number, and the gold answer is the whole worked solution.
"""

from __future__ import annotations

import sys

import numpy as np
import polars as pl

from demoscope.data.answers import exact_match, extract_number, gold_number
from demoscope.lm.generation import generate
from demoscope.quality.metrics import OUTCOME_OF, QUALITY_METRICS
from demoscope.lm.promptbuilder import encode_for_scoring
from demoscope.lm.scoring import score_options
from demoscope.data.templates import Template



def encode_prompts(tokenizer, template: Template, demo_sets: list[list[str]], queries: pl.DataFrame,
                   answers: bool = False) -> tuple[list, list, list]:
    """Prefix ids per set of demonstrations, separator+query ids per query, and each query's
    answer_prefix+option ids (with `answers`, the gold answer as the only option), cut from
    each prompt's single tokenisation by the prompt builder."""
    options = [[a] for a in queries["answer"].to_list()] if answers else queries["options"].to_list()
    return encode_for_scoring(tokenizer, template, demo_sets, queries["query"].to_list(), options)


def outcomes(option_lp: np.ndarray, option_len: np.ndarray, gold: np.ndarray) -> dict[str, np.ndarray]:
    """Per-query outcomes, each (prefixes x queries), from (prefixes, queries, options) summed
    log-probs: `correct` (the gold option has the largest summed log-prob), `correct_norm`
    (largest per-token log-prob), `gold_logprob` and `gold_logprob_norm`."""
    normed = option_lp / option_len[None]
    filled = np.where(np.isnan(option_lp), -np.inf, option_lp)
    filled_norm = np.where(np.isnan(normed), -np.inf, normed)
    q = np.arange(len(gold))
    return {
        "correct": (filled.argmax(-1) == gold[None]).astype(float),
        "correct_norm": (filled_norm.argmax(-1) == gold[None]).astype(float),
        "gold_logprob": option_lp[:, q, gold],
        "gold_logprob_norm": normed[:, q, gold],
    }


def means(per_query: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The quality metrics: each outcome's mean over the queries."""
    return {metric: per_query[outcome].mean(-1) for metric, outcome in OUTCOME_OF.items()}


def summarise(option_lp: np.ndarray, option_len: np.ndarray, gold: np.ndarray) -> dict[str, np.ndarray]:
    """Per-prefix metrics from (prefixes, queries, options) summed log-probs."""
    return means(outcomes(option_lp, option_len, gold))


def option_lengths(o_ids: list[list[list[int]]], n_opts: int) -> np.ndarray:
    lengths = np.full((len(o_ids), n_opts), np.nan)
    for q, opts in enumerate(o_ids):
        lengths[q, : len(opts)] = [len(o) for o in opts]
    return lengths


def score_quality(
    model, tokenizer, template: Template, candidates: pl.DataFrame, queries: pl.DataFrame, device: str,
    batch_tokens: int, kind: str = "classification", generation: dict | None = None, progress: bool = True,
) -> pl.DataFrame:
    """Per candidate: the quality metrics over every quality query (`quality_tables`' first table)."""
    return quality_tables(model, tokenizer, template, candidates, queries, device, batch_tokens, kind, generation,
                          progress)[0]


def quality_tables(
    model, tokenizer, template: Template, candidates: pl.DataFrame, queries: pl.DataFrame, device: str,
    batch_tokens: int, kind: str = "classification", generation: dict | None = None, progress: bool = True,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per candidate, the quality metrics over every quality query; and per candidate x query,
    the outcomes they average (`by_query_table`), which reliability is measured from.

    `kind` is the task's; a `generation` task needs `generation` = {max_new_tokens, stop} and
    may set min_new_tokens (`tasks.generation_settings`).
    """
    demo_sets = [[d] for d in candidates["demonstration"]]
    if kind == "generation":
        per_query = generation_outcomes(model, tokenizer, template, demo_sets, queries, device, batch_tokens,
                                        generation["max_new_tokens"], generation["stop"], progress,
                                        generation.get("min_new_tokens", 0))
    else:
        prefixes, q_ids, o_ids = encode_prompts(tokenizer, template, demo_sets, queries)
        option_lp = score_options(model, prefixes, q_ids, o_ids, device, tokenizer.pad_token_id, batch_tokens, progress)
        per_query = outcomes(option_lp, option_lengths(o_ids, option_lp.shape[-1]), queries["gold_index"].to_numpy())
    metrics = means(per_query)
    per_candidate = pl.DataFrame(
        {
            "cand_id": candidates["cand_id"],
            "label": candidates["label"],
            **{name: metrics[name] for name in QUALITY_METRICS},
            "n_queries": [len(queries)] * len(candidates),
        }
    )
    return per_candidate, by_query_table(candidates, queries, per_query)


def by_query_table(candidates: pl.DataFrame, queries: pl.DataFrame, per_query: dict[str, np.ndarray]) -> pl.DataFrame:
    """One row per candidate x quality query: cand_id, query_id, the query's label, and every
    per-query outcome (candidate-major, queries in their table's order)."""
    n_cand, n_query = len(candidates), len(queries)
    labels = [label or "" for label in queries["label"].to_list()] if "label" in queries.columns else [""] * n_query
    query_ids = queries["query_id"].to_numpy() if "query_id" in queries.columns else np.arange(n_query)
    return pl.DataFrame(
        {
            "cand_id": np.repeat(candidates["cand_id"].to_numpy(), n_query),
            "query_id": np.tile(query_ids, n_cand),
            "query_label": labels * n_cand,
            **{name: np.asarray(values, dtype=float).reshape(-1) for name, values in per_query.items()},
        }
    )


def generation_outcomes(
    model, tokenizer, template: Template, demo_sets: list[list[str]], queries: pl.DataFrame, device: str,
    batch_tokens: int, max_new_tokens: int, stop: list[str], progress: bool = True, min_new_tokens: int = 0,
) -> dict[str, np.ndarray]:
    """Per-query outcomes (prefixes x queries) of a generation task.

    `correct`: exact match of the greedy output's last number with the gold final number.
    Exact match has no per-token form, so `correct_norm` is the same number.
    `gold_logprob`: summed log-prob of the whole gold solution (answer_prefix + worked answer)
    as a continuation, scored like an option; `gold_logprob_norm`: per token.
    """
    prefixes, q_ids, gold_ids = encode_prompts(tokenizer, template, demo_sets, queries, answers=True)
    outputs = generate(model, tokenizer, prefixes, q_ids, None, device, max_new_tokens, stop, batch_tokens, progress,
                       min_new_tokens)
    golds = queries["answer"].to_list()
    correct = np.array([exact_match(text, golds[i % len(golds)]) for i, text in enumerate(outputs)], dtype=float)
    correct = correct.reshape(len(prefixes), len(golds))
    report_outputs(outputs, golds)
    gold_lp = score_options(model, prefixes, q_ids, gold_ids, device, tokenizer.pad_token_id, batch_tokens, progress)[..., 0]
    lengths = np.array([len(g[0]) for g in gold_ids], dtype=float)
    return {
        "correct": correct,
        "correct_norm": correct.copy(),
        "gold_logprob": gold_lp,
        "gold_logprob_norm": gold_lp / lengths[None],
    }


def report_outputs(outputs: list[str], golds: list[str], shown: int = 4) -> None:
    """How the model answers, for the job log: how often it writes '####' or no number at all,
    and the first candidate's outputs next to the gold numbers."""
    n = len(outputs)
    marked = sum("####" in text for text in outputs)
    bare = sum(extract_number(text) is None for text in outputs)
    print(f"generated {n} answers: {marked} contain '####', {bare} contain no number", file=sys.stderr)
    for i, text in enumerate(outputs[:shown]):
        gold = golds[i % len(golds)]
        print(f"  output {i}: {text!r} -> {extract_number(text)} (gold {gold_number(gold)})", file=sys.stderr)
