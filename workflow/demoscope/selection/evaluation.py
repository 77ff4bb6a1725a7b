"""Task performance: k-shot accuracy of chosen demonstrations on the test queries.

A k-shot prompt is `instruction + separator` (when the task has an instruction), the
demonstrations in selection order joined by the separator, then `separator + query`, and
each option is scored as the continuation `answer_prefix + option`; with k = 1 it is exactly
the quality prompt. A set shared by every query is one prefix whose KV cache serves all the
queries; per-query sets are one prefix per query, scored as (prefix, query) pairs, never as
a grid. The prediction is the option with the highest summed log-prob (as `accuracy` in
quality). Generation tasks decode greedily and compare the final numbers (exact match), and
`gold_logprob` is the gold solution's summed log-prob, as in quality.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from demoscope.data.answers import exact_match
from demoscope.lm.generation import generate
from demoscope.lm.promptbuilder import render
from demoscope.quality.oneshot import encode_prompts
from demoscope.lm.scoring import score_options
from demoscope.data.templates import Template


def prefix_text(template: Template, demonstrations: list[str]) -> str:
    return render(template, demonstrations)[0]


def demo_sets(candidates: pl.DataFrame, sets: list[list[int]]) -> list[list[str]]:
    """The demonstration texts of each set of candidate ids, in prompt order."""
    text = dict(zip(candidates["cand_id"].to_list(), candidates["demonstration"].to_list()))
    return [[text[c] for c in ids] for ids in sets]


def score_pairs(
    model, tokenizer, template: Template, candidates: pl.DataFrame, queries: pl.DataFrame, sets: list[list[int]],
    pairs: list[tuple[int, int]] | None, device: str, batch_tokens: int, generation: dict | None = None,
) -> dict[str, np.ndarray]:
    """`correct`, `gold_logprob` and `predicted` for each (set, query) pair (None: the full
    grid, sets x queries), and `output` (the decoded answer) for generation tasks, which pass
    their decoding settings as `generation` (`tasks.generation_settings`; empty otherwise)."""
    shape = (len(sets), len(queries)) if pairs is None else (len(pairs),)
    if generation:
        return _generate_pairs(model, tokenizer, template, demo_sets(candidates, sets), queries, pairs, device,
                               batch_tokens, generation, shape)
    prefixes, q_ids, o_ids = encode_prompts(tokenizer, template, demo_sets(candidates, sets), queries)
    lp = score_options(model, prefixes, q_ids, o_ids, device, tokenizer.pad_token_id, batch_tokens, pairs=pairs)
    lp = lp.reshape(-1, lp.shape[-1])
    query_of = np.tile(np.arange(len(queries)), len(sets)) if pairs is None else np.array([q for _, q in pairs])
    gold = queries["gold_index"].to_numpy()[query_of]
    predicted = np.where(np.isnan(lp), -np.inf, lp).argmax(-1)
    return {
        "correct": (predicted == gold).reshape(shape),
        "gold_logprob": lp[np.arange(len(lp)), gold].reshape(shape),
        "predicted": predicted.reshape(shape),
    }


def _generate_pairs(model, tokenizer, template, texts, queries, pairs, device, batch_tokens, generation, shape):
    """Greedy answers, their exact match with the gold final number, and the gold solution's
    summed log-prob as a continuation (as quality scores a generation task)."""
    prefixes, q_ids, gold_ids = encode_prompts(tokenizer, template, texts, queries, answers=True)
    outputs = generate(
        model, tokenizer, prefixes, q_ids, pairs, device, generation["max_new_tokens"], generation["stop"],
        batch_tokens, min_new_tokens=generation.get("min_new_tokens", 0),
    )
    query_of = np.tile(np.arange(len(queries)), len(prefixes)) if pairs is None else np.array([q for _, q in pairs])
    golds = queries["answer"].to_list()
    correct = np.array([bool(exact_match(text, golds[q])) for text, q in zip(outputs, query_of)])
    gold_lp = score_options(model, prefixes, q_ids, gold_ids, device, tokenizer.pad_token_id, batch_tokens, pairs=pairs)
    return {
        "correct": correct.reshape(shape),
        "gold_logprob": gold_lp[..., 0].reshape(shape),
        "predicted": np.full(shape, -1),
        "output": np.array(outputs, dtype=object).reshape(shape),
    }


def sets_of(selection: pl.DataFrame) -> tuple[list[int], list[list[int]]]:
    """(query ids, one list of candidate ids per query id in prompt order) of a selection
    table; query id -1 is a set shared by every test query."""
    ordered = selection.sort("query_id", "position")
    grouped = ordered.group_by("query_id", maintain_order=True).agg(pl.col("cand_id"))
    return grouped["query_id"].to_list(), grouped["cand_id"].to_list()


def evaluate_selection(
    model, tokenizer, template: Template, candidates: pl.DataFrame, queries: pl.DataFrame, selection: pl.DataFrame,
    device: str, batch_tokens: int, generation: dict | None = None,
) -> pl.DataFrame:
    """Per test query: `correct`, `gold_logprob`, `predicted` (option index; -1 for
    generation), `output` (generation only) and `shots`, for one strategy instance's selection."""
    query_ids, sets = sets_of(selection)
    test_ids = queries["query_id"].to_list()
    if query_ids == [-1]:
        pairs = [(0, q) for q in range(len(queries))]
    else:
        missing = sorted(set(test_ids) - set(query_ids))
        if missing:
            raise ValueError(f"selection: no demonstrations for test queries {missing[:5]}")
        position = {qid: i for i, qid in enumerate(query_ids)}
        pairs = [(position[qid], q) for q, qid in enumerate(test_ids)]
    scored = score_pairs(model, tokenizer, template, candidates, queries, sets, pairs, device, batch_tokens, generation)
    columns = {
        "query_id": test_ids,
        "correct": scored["correct"].astype(bool),
        "gold_logprob": scored["gold_logprob"].astype(float),
        "predicted": scored["predicted"].astype(np.int64),
        "shots": [len(sets[p]) for p, _ in pairs],
    }
    if "output" in scored:
        columns["output"] = [str(text) for text in scored["output"]]
    return pl.DataFrame(columns)
