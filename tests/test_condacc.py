"""CondAcc quality against a brute-force evaluation: each k-shot prompt scored alone, with full logits."""

from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl
import pytest
import torch

from demoscope.lm import models
from demoscope.quality.condacc import draw_prompts, score_condacc
from demoscope.data.templates import Template

TEMPLATE = Template.from_config({"instruction": "Classify.", "demonstration": "{input} {answer}", "query": "{input}"})
CANDIDATES = pl.DataFrame(
    {
        "cand_id": [0, 1, 2, 3, 4],
        "label": ["negative", "positive", "negative", "positive", "positive"],
        "demonstration": ["Review: bad \nSentiment: negative", "Review: great \nSentiment: positive",
                          "Review: dull plot \nSentiment: negative", "Review: love music \nSentiment: positive",
                          "Review: fine film \nSentiment: positive"],
    }
)
QUERIES = pl.DataFrame({"query": ["Review: love \nSentiment:", "Review: hate \nSentiment:", "Review: awful \nSentiment:"],
                        "options": [["negative", "positive"]] * 3, "gold_index": [1, 0, 0]})


def option_logprob(model, ids: list[int], option: list[int]) -> float:
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([ids + option])).logits[0].float(), -1)
    return sum(lp[len(ids) - 1 + j, t].item() for j, t in enumerate(option))


def test_prompts_hold_every_candidate_sets_times_and_are_seeded():
    prompts = draw_prompts(list(range(10)), 4, 3, seed=0)
    assert len(prompts) == 9 and all(len(set(p)) == 4 for p in prompts)
    counts = Counter(c for p in prompts for c in p)
    # 10 = 2 x 4 + 2: each round completes its last prompt with 2 candidates of that round.
    assert set(counts) == set(range(10)) and min(counts.values()) == 3 and sum(counts.values()) == 36
    assert prompts == draw_prompts(list(range(10)), 4, 3, seed=0)
    assert prompts != draw_prompts(list(range(10)), 4, 3, seed=1)
    with pytest.raises(ValueError, match="quality.condacc.k: 11 demonstrations per prompt, but the task has 10"):
        draw_prompts(list(range(10)), 11, 1, seed=0)


def test_condacc_equals_a_brute_force_evaluation_of_the_same_prompts(tiny_llama):
    model, tok, _ = models.load(tiny_llama, "cpu", "float32")
    torch.set_num_threads(1)
    quality, outcomes, by_query = score_condacc(model, tok, TEMPLATE, CANDIDATES, QUERIES, k=2, sets=3, seed=7, device="cpu",
                                      batch_tokens=96, progress=False)
    prompts = draw_prompts(CANDIDATES["cand_id"].to_list(), 2, 3, 7)
    assert outcomes["prompt_id"].n_unique() == len(prompts) == 9 and len(outcomes) == 9 * 3
    demo = dict(zip(CANDIDATES["cand_id"], CANDIDATES["demonstration"]))
    acc, lp = np.zeros(len(prompts)), np.zeros(len(prompts))
    for p, ids in enumerate(prompts):
        assert outcomes.filter(pl.col("prompt_id") == p)["cand_ids"][0].to_list() == ids
        text = "Classify.\n\n" + "\n\n".join(demo[c] for c in ids)
        correct, gold_lp = [], []
        for q, (query, gold) in enumerate(zip(QUERIES["query"], QUERIES["gold_index"])):
            prefix = tok(text).input_ids + tok("\n\n" + query, add_special_tokens=False).input_ids
            scores = [option_logprob(model, prefix, tok(" " + o, add_special_tokens=False).input_ids)
                      for o in ["negative", "positive"]]
            row = outcomes.filter((pl.col("prompt_id") == p) & (pl.col("query_id") == q)).row(0, named=True)
            assert row["gold_logprob"] == pytest.approx(scores[gold], abs=1e-4)
            assert row["correct"] == float(np.argmax(scores) == gold)
            correct.append(np.argmax(scores) == gold)
            gold_lp.append(scores[gold])
        acc[p], lp[p] = np.mean(correct), np.mean(gold_lp)
    for row in quality.iter_rows(named=True):
        mine = [p for p, ids in enumerate(prompts) if row["cand_id"] in ids]
        assert row["n_prompts"] == len(mine) >= 3
        assert row["accuracy"] == pytest.approx(acc[mine].mean())
        assert row["gold_logprob"] == pytest.approx(lp[mine].mean(), abs=1e-4)
        assert row["n_queries"] == 3
    # Per candidate x query: the outcome averaged over the candidate's prompts; its row mean is
    # the candidate's CondAcc, so reliability splits the queries of the same matrix.
    for row in by_query.iter_rows(named=True):
        mine = [p for p, ids in enumerate(prompts) if row["cand_id"] in ids]
        hits = outcomes.filter(pl.col("prompt_id").is_in(mine) & (pl.col("query_id") == row["query_id"]))
        assert row["correct"] == pytest.approx(hits["correct"].mean())
        assert row["gold_logprob"] == pytest.approx(hits["gold_logprob"].mean(), abs=1e-5)
    means = by_query.group_by("cand_id").agg(pl.col("correct").mean()).sort("cand_id")
    assert means["correct"].to_numpy() == pytest.approx(quality.sort("cand_id")["accuracy"].to_numpy())
    assert by_query.height == 5 * 3
    assert quality.columns[:7] == ["cand_id", "label", "accuracy", "gold_logprob", "accuracy_norm",
                                   "gold_logprob_norm", "n_queries"]
