"""Quality scoring against a hand computation: each full prompt scored alone, with full logits."""

import numpy as np
import polars as pl
import pytest
import torch

from demoscope import models
from demoscope.quality import score_quality, summarise
from demoscope.scoring import score_options
from demoscope.templates import Template


def naive_option_logprob(model, ids: list[int], option: list[int]) -> float:
    with torch.no_grad():
        logits = model(torch.tensor([ids + option])).logits[0]
    lp = torch.log_softmax(logits.float(), -1)
    return sum(lp[len(ids) - 1 + j, t].item() for j, t in enumerate(option))


@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_qwen2"])
def test_cached_prefix_scores_equal_full_prompt_scores(arch, request):
    model, tok, _ = models.load(request.getfixturevalue(arch), "cpu", "float32")
    prefixes = [tok(t).input_ids for t in ["Review: good film \nSentiment: positive", "Question: which?\nAnswer: gas"]]
    queries = [tok(t, add_special_tokens=False).input_ids for t in ["\n\nReview: dull", "\n\nQuestion: rock sun earth heat?\nAnswer:"]]
    options = [
        [tok(" negative", add_special_tokens=False).input_ids, tok(" positive", add_special_tokens=False).input_ids],
        [tok(o, add_special_tokens=False).input_ids for o in [" water", " liquid rock", " gas", " sun light sound"]],
    ]
    got = score_options(model, prefixes, queries, options, "cpu", tok.pad_token_id, batch_tokens=64, progress=False)
    assert got.shape == (2, 2, 4)
    for p, prefix in enumerate(prefixes):
        for q, query in enumerate(queries):
            for k, option in enumerate(options[q]):
                assert got[p, q, k] == pytest.approx(naive_option_logprob(model, prefix + query, option), abs=1e-4)
            assert np.isnan(got[p, q, len(options[q]):]).all()


def test_summarise_by_hand():
    # 2 prefixes x 2 queries x 3 options; query 1 has only two options.
    lp = np.array([[[-1.0, -2.0, -3.0], [-5.0, -4.0, np.nan]], [[-3.0, -2.0, -1.0], [-1.0, -9.0, np.nan]]])
    lengths = np.array([[1, 1, 4], [1, 2, np.nan]])
    gold = np.array([0, 1])
    m = summarise(lp, lengths, gold)
    np.testing.assert_allclose(m["accuracy"], [1.0, 0.0])
    np.testing.assert_allclose(m["gold_logprob"], [(-1 - 4) / 2, (-3 - 9) / 2])
    # normalised: option 2 (-3 over 4 tokens) now beats the gold option of query 0
    np.testing.assert_allclose(m["accuracy_norm"], [0.5, 0.0])
    np.testing.assert_allclose(m["gold_logprob_norm"], [(-1 - 2) / 2, (-3 - 4.5) / 2])


def test_score_quality_matches_hand_computation(tiny_llama):
    model, tok, _ = models.load(tiny_llama, "cpu", "float32")
    template = Template.from_config({"demonstration": "{input} {answer}", "query": "{input}"})
    candidates = pl.DataFrame({"cand_id": [0, 1], "label": ["negative", "positive"],
                               "demonstration": ["Review: bad \nSentiment: negative", "Review: great \nSentiment: positive"]})
    queries = pl.DataFrame({"query": ["Review: love \nSentiment:", "Review: hate \nSentiment:"],
                            "options": [["negative", "positive"]] * 2, "gold_index": [1, 0]})
    got = score_quality(model, tok, template, candidates, queries, "cpu", batch_tokens=128)
    for row in got.iter_rows(named=True):
        demo = candidates["demonstration"][row["cand_id"]]
        correct, gold_lp = [], []
        for query, gold in zip(queries["query"], queries["gold_index"]):
            ids = tok(demo).input_ids + tok("\n\n" + query, add_special_tokens=False).input_ids
            scores = [naive_option_logprob(model, ids, tok(" " + o, add_special_tokens=False).input_ids)
                      for o in ["negative", "positive"]]
            correct.append(int(np.argmax(scores)) == gold)
            gold_lp.append(scores[gold])
        assert row["accuracy"] == pytest.approx(np.mean(correct))
        assert row["gold_logprob"] == pytest.approx(np.mean(gold_lp), abs=1e-4)
