"""Quality scoring against a hand computation: each full prompt scored alone, with full logits."""

import numpy as np
import polars as pl
import pytest
import torch

from demoscope.lm import models
from demoscope.quality.oneshot import quality_tables, score_quality, summarise
from demoscope.lm.scoring import score_options
from demoscope.data.records import Record
from demoscope.data.templates import Template


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
    _, by_query = quality_tables(model, tok, template, candidates, queries, "cpu", batch_tokens=128)
    assert by_query.columns[:3] == ["cand_id", "query_id", "query_label"] and by_query.height == 4
    for row in got.iter_rows(named=True):
        demo = candidates["demonstration"][row["cand_id"]]
        correct, gold_lp = [], []
        for query, gold in zip(queries["query"], queries["gold_index"]):
            ids = tok(demo).input_ids + tok("\n\n" + query, add_special_tokens=False).input_ids
            scores = [naive_option_logprob(model, ids, tok(" " + o, add_special_tokens=False).input_ids)
                      for o in ["negative", "positive"]]
            correct.append(int(np.argmax(scores)) == gold)
            gold_lp.append(scores[gold])
        # The candidate x query outcomes the metrics average are kept, query by query.
        mine = by_query.filter(pl.col("cand_id") == row["cand_id"]).sort("query_id")
        assert mine["correct"].to_list() == [float(c) for c in correct]
        assert mine["gold_logprob"].to_numpy() == pytest.approx(gold_lp, abs=1e-4)
        assert row["accuracy"] == pytest.approx(np.mean(correct))
        assert row["gold_logprob"] == pytest.approx(np.mean(gold_lp), abs=1e-4)


GSM_DEMO = "Solve it.\n\nQuestion: Tom has 3 apples and buys 4. How many?\nAnswer: 3 + 4 = <<3+4=7>>7\n#### 7"
GSM_QUERIES = ["\n\nQuestion: A film has 2 scenes per reel and 5 reels. How many scenes?\nAnswer:",
               "\n\nQuestion: What is 10 - 4?\nAnswer:"]
GSM_SOLUTIONS = [" 2 * 5 = <<2*5=10>>10 scenes\n#### 10", " 10 - 4 = <<10-4=6>>6\n#### 6"]


@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_qwen2"])
def test_cached_prefix_gold_solution_scores_equal_full_prompt_scores(arch, request):
    """Generation tasks score the whole worked solution, many tokens and lines, as one option."""
    model, tok, _ = models.load(request.getfixturevalue(arch), "cpu", "float32")
    prefixes = [tok(GSM_DEMO).input_ids, tok("Question: rock?\nAnswer: 1\n#### 1").input_ids]
    queries = [tok(q, add_special_tokens=False).input_ids for q in GSM_QUERIES]
    options = [[tok(s, add_special_tokens=False).input_ids] for s in GSM_SOLUTIONS]
    assert min(len(o[0]) for o in options) > 10
    got = score_options(model, prefixes, queries, options, "cpu", tok.pad_token_id, batch_tokens=64, progress=False)
    assert got.shape == (2, 2, 1)
    for p, prefix in enumerate(prefixes):
        for q, query in enumerate(queries):
            assert got[p, q, 0] == pytest.approx(naive_option_logprob(model, prefix + query, options[q][0]), abs=1e-4)


def favour_digits(model, tok, digits="0123456789", bias=50.0):
    """Add a large bias to the logits of some digit tokens: greedy outputs become numbers whose
    digits the random weights still choose."""
    head = model.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    biased.weight.data.copy_(head.weight.data)
    biased.bias.data.zero_()
    for digit in digits:
        (token,) = tok(digit, add_special_tokens=False).input_ids
        biased.bias.data[token] = bias
    model.set_output_embeddings(biased)


def test_generation_quality_is_exact_match_of_the_greedy_output(tiny_llama):
    from demoscope.data.answers import extract_number
    from demoscope.lm.generation import generate

    model, tok, _ = models.load(tiny_llama, "cpu", "float32")
    favour_digits(model, tok)
    template = Template.from_config({"instruction": "Solve it.", "demonstration": "Question: {input}\nAnswer:{answer_prefix}{answer}",
                                     "query": "Question: {input}\nAnswer:"})
    demos = ["Question: Tom has 3 apples and buys 4. How many?\nAnswer: 3 + 4 = 7\n#### 7",
             "Question: rock?\nAnswer: 1\n#### 1", "Question: sun earth heat?\nAnswer: 2 + 2\n#### 4"]
    candidates = pl.DataFrame({"cand_id": [0, 1, 2], "label": ["", "", ""], "demonstration": demos})
    questions = ["What is 10 - 4?", "A film has 2 scenes per reel and 5 reels. How many scenes?"]
    prefixes = [tok("Solve it.\n\n" + d).input_ids for d in demos]
    q_ids = [tok("\n\n" + template.query_text(Record(id="", input=q, answer=""))).input_ids for q in questions]
    settings = {"max_new_tokens": 6, "stop": ["\n\n"]}
    outputs = generate(model, tok, prefixes, q_ids, None, "cpu", 6, ["\n\n"], 4096, progress=False)
    numbers = [extract_number(o) for o in outputs]
    assert all(n is not None and len(n) == 6 for n in numbers) and len(set(numbers)) > 1
    # Query 0's gold is candidate 0's greedy number, written with thousands commas; query 1's
    # gold is a number no output has.
    gold0 = f"{int(numbers[0]):,}"
    queries = pl.DataFrame({"query": [template.query_text(Record(id="", input=q, answer="")) for q in questions],
                            "answer": [f"10 - 4 = 6\n#### {gold0}", "2 * 5 = 10\n#### 10"],
                            "options": [[], []], "gold_index": [-1, -1]}, schema_overrides={"options": pl.List(pl.String)})
    got = score_quality(model, tok, template, candidates, queries, "cpu", 4096, kind="generation",
                        generation=settings, progress=False)
    expected = [np.mean([numbers[2 * c] == numbers[0], False]) for c in range(3)]
    assert got["accuracy"].to_list() == expected and expected[0] == 0.5 and 0.0 in expected
    assert got["accuracy_norm"].to_list() == expected
    for row in got.iter_rows(named=True):
        prefix = prefixes[row["cand_id"]]
        lps, norms = [], []
        for q, answer in zip(q_ids, queries["answer"]):
            gold = tok(" " + answer, add_special_tokens=False).input_ids
            lps.append(naive_option_logprob(model, prefix + q, gold))
            norms.append(lps[-1] / len(gold))
        assert row["gold_logprob"] == pytest.approx(np.mean(lps), abs=1e-4)
        assert row["gold_logprob_norm"] == pytest.approx(np.mean(norms), abs=1e-4)
