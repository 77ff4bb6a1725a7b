"""k-shot evaluation, zero-shot uncertainty, embeddings and the task side, against hand computations."""

import itertools
import math

import numpy as np
import polars as pl
import pytest
import torch
from scipy import stats

from demoscope.lm import models
from demoscope.lm.embeddings import candidate_texts, load_encoder, mean_pooled
from demoscope.selection.evaluation import evaluate_selection, prefix_text, score_pairs
from demoscope.lm.scoring import score_options
from demoscope.selection.strategyreport import strategy_table, t_interval, wilson
from demoscope.stats.taskcorr import random_sets, set_table, task_rho_rows
from demoscope.data.templates import Template
from demoscope.lm.tokens import length_batches
from demoscope.lm.zeroshot import next_token_entropy, option_entropy, zero_shot_uncertainty

TEMPLATE = Template.from_config(
    {"instruction": "Classify each review.", "demonstration": "{input}{answer_prefix}{answer}", "query": "{input}"}
)
CANDIDATES = pl.DataFrame(
    {
        "cand_id": [0, 1, 2, 3],
        "input": ["Review: bad plot \nSentiment:", "Review: great film \nSentiment:",
                  "Review: dull story \nSentiment:", "Review: love music \nSentiment:"],
        "label": ["negative", "positive", "negative", "positive"],
        "options": [["negative", "positive"]] * 3 + [["negative", "positive", "great fine"]],
    }
).with_columns(
    pl.concat_str([pl.col("input"), pl.lit(" "), pl.col("label")]).alias("demonstration")
)
QUERIES = pl.DataFrame(
    {
        "query_id": [0, 1, 2],
        "query": ["Review: love story \nSentiment:", "Review: hate actor \nSentiment:", "Review: fine scene \nSentiment:"],
        # A multi-token option, and queries with different numbers of options.
        "options": [["negative", "positive", "great fine"], ["negative", "positive"], ["negative", "positive", "great fine"]],
        "gold_index": [1, 0, 2],
        "answer": ["positive", "negative", "great fine"],
        "label": ["positive", "negative", "great fine"],
    }
)


def full_logprobs(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)


def naive_option_lp(model, ids, option) -> float:
    lp = full_logprobs(model, ids + option)
    return sum(lp[len(ids) - 1 + j, t].item() for j, t in enumerate(option))


@pytest.fixture(scope="module")
def llama(tiny_llama):
    return models.load(tiny_llama, "cpu", "float32")


def naive_kshot(model, tok, demos: list[str], query: str, options: list[str]) -> list[float]:
    ids = tok(prefix_text(TEMPLATE, demos)).input_ids + tok("\n\n" + query, add_special_tokens=False).input_ids
    return [naive_option_lp(model, ids, tok(" " + o, add_special_tokens=False).input_ids) for o in options]


def test_pairs_score_only_their_cells_of_the_grid(llama):
    model, tok, _ = llama
    prefixes = [tok(t).input_ids for t in ["Review: good", "Question: which rock gas liquid?\nAnswer: gas", "x"]]
    queries = [tok(t, add_special_tokens=False).input_ids for t in ["\n\nReview: dull", "\n\nQuestion: sun?\nAnswer:"]]
    options = [[tok(o, add_special_tokens=False).input_ids for o in opts]
               for opts in ([" negative", " positive"], [" water", " liquid rock", " heat light sound"])]
    grid = score_options(model, prefixes, queries, options, "cpu", tok.pad_token_id, batch_tokens=48, progress=False)
    pairs = [(2, 0), (0, 1), (1, 1), (2, 1)]
    got = score_options(model, prefixes, queries, options, "cpu", tok.pad_token_id, batch_tokens=48, progress=False,
                        pairs=pairs)
    assert got.shape == (4, 3)
    for row, (p, q) in enumerate(pairs):
        np.testing.assert_allclose(got[row], grid[p, q], atol=1e-5)


@pytest.mark.parametrize("per_query", [False, True])
def test_kshot_evaluation_equals_full_prompt_scoring(llama, per_query):
    model, tok, _ = llama
    if per_query:  # one set per test query, as the similarity strategy writes
        sets = {0: [1, 0], 1: [2, 3, 0], 2: [3]}
        rows = [(q, p, c) for q, ids in sets.items() for p, c in enumerate(ids)]
    else:
        rows = [(-1, 0, 2), (-1, 1, 1), (-1, 2, 0)]
    selection = pl.DataFrame(rows, schema=["query_id", "position", "cand_id"], orient="row")
    got = evaluate_selection(model, tok, TEMPLATE, CANDIDATES, QUERIES, selection, "cpu", batch_tokens=64)
    demos = CANDIDATES["demonstration"].to_list()
    for row in got.iter_rows(named=True):
        q = row["query_id"]
        ids = sets[q] if per_query else [2, 1, 0]
        scores = naive_kshot(model, tok, [demos[c] for c in ids], QUERIES["query"][q], QUERIES["options"][q].to_list())
        gold = QUERIES["gold_index"][q]
        assert row["correct"] == (int(np.argmax(scores)) == gold)
        assert row["predicted"] == int(np.argmax(scores))
        assert row["gold_logprob"] == pytest.approx(scores[gold], abs=1e-4)
        assert row["shots"] == len(ids)


def test_one_shot_prompt_is_the_quality_prompt():
    assert prefix_text(TEMPLATE, ["D1"]) == "Classify each review.\n\nD1"
    assert prefix_text(TEMPLATE, ["D1", "D2"]) == "Classify each review.\n\nD1\n\nD2"
    assert prefix_text(Template.from_config({}), ["D1", "D2"]) == "D1\n\nD2"


def test_zero_shot_uncertainty_equals_hand_computation(llama):
    model, tok, _ = llama
    got = zero_shot_uncertainty(model, tok, TEMPLATE, CANDIDATES, "cpu", batch_tokens=64, generation=False)
    for row, text, options in zip(got.iter_rows(named=True), CANDIDATES["input"], CANDIDATES["options"]):
        ids = tok("Classify each review.\n\n" + text).input_ids
        lp = np.array([naive_option_lp(model, ids, tok(" " + o, add_special_tokens=False).input_ids) for o in options])
        p = np.exp(lp - lp.max())
        p /= p.sum()
        assert row["entropy"] == pytest.approx(-(p * np.log(p)).sum(), abs=1e-5)
        assert row["n_options"] == len(options)
        assert row["uncertainty"] == pytest.approx(row["entropy"] / math.log(len(options)), abs=1e-6)
    generated = zero_shot_uncertainty(model, tok, TEMPLATE, CANDIDATES, "cpu", batch_tokens=64, generation=True)
    for row, text in zip(generated.iter_rows(named=True), CANDIDATES["input"]):
        lp = full_logprobs(model, tok("Classify each review.\n\n" + text).input_ids)[-1]
        assert row["uncertainty"] == pytest.approx(-(lp.exp() * lp).sum().item(), abs=1e-4)


def test_option_entropy_ignores_absent_options():
    lp = np.array([[np.log(0.5), np.log(0.5), np.nan], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(option_entropy(lp), [math.log(2), math.log(3)])


def test_next_token_entropy_does_not_depend_on_the_batch(llama):
    model, tok, _ = llama
    prompts = [tok(t).input_ids for t in ["Review: good", "Question: which rock gas liquid?", "x"]]
    together = next_token_entropy(model, prompts, "cpu", tok.pad_token_id, batch_tokens=256)
    alone = [next_token_entropy(model, [p], "cpu", tok.pad_token_id, batch_tokens=256)[0] for p in prompts]
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_mean_pooled_embeddings_equal_one_text_at_a_time(llama, tiny_llama):
    encoder, tok, _ = load_encoder("model", tiny_llama, "cpu", "float32")
    texts = candidate_texts(TEMPLATE, CANDIDATES) + QUERIES["query"].to_list()
    assert texts[0] == "Review: bad plot \nSentiment:"  # the input only, never the answer
    got = mean_pooled(encoder, tok, texts, "cpu", batch_tokens=40)
    model = llama[0]
    for text, vector in zip(texts, got):
        with torch.no_grad():
            hidden = model(torch.tensor([tok(text).input_ids]), output_hidden_states=True).hidden_states[-1][0]
        np.testing.assert_allclose(vector, hidden.mean(0).numpy(), atol=1e-5)


def test_a_local_sentence_encoder_is_mean_pooled(tmp_path, tiny_llama):
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=400, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, pad_token_id=0)).save_pretrained(tmp_path / "enc")
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(tmp_path / "enc")
    encoder, tok, _ = load_encoder(str(tmp_path / "enc"), "unused", "cpu", "float32")
    texts = ["Review: good film", "Question: which rock?"]
    got = mean_pooled(encoder, tok, texts, "cpu")
    assert got.shape == (2, 16)
    with torch.no_grad():
        alone = encoder(torch.tensor([tok(texts[1]).input_ids])).last_hidden_state[0].mean(0).numpy()
    np.testing.assert_allclose(got[1], alone, atol=1e-5)


# --- the task side ------------------------------------------------------------------------------

def test_random_sets_are_seeded_balanced_and_stable_when_extended():
    labels = np.array(["a", "b"] * 10)
    sets = random_sets(np.arange(100, 120), 4, 5, seed=0, labels=labels)
    assert sets == random_sets(np.arange(100, 120), 4, 5, seed=0, labels=labels)
    assert random_sets(np.arange(100, 120), 4, 8, seed=0, labels=labels)[:5] == sets  # adding sets keeps these
    for ids in sets:
        assert sorted(labels[np.array(ids) - 100]) == ["a", "a", "b", "b"]


def test_task_rho_is_spearman_of_set_means():
    rng = np.random.default_rng(1)
    features = pl.DataFrame({"cand_id": np.repeat(np.arange(6), 2), "layer": np.tile([0, 1], 6),
                             "mean": rng.normal(size=12), "top1": np.ones(12)})
    sets = [[0, 1], [2, 3], [4, 5], [0, 5], [1, 2]]
    correct = rng.random((5, 7)) > 0.5
    table = set_table(sets, correct, rng.normal(size=(5, 7)))
    rows = task_rho_rows(features, table, ["mean", "top1"])
    assert rows.height == 2 * 2 * 2  # features x layers x metrics
    for layer in (0, 1):
        values = features.filter(pl.col("layer") == layer).sort("cand_id")["mean"].to_numpy()
        x = np.array([values[s].mean() for s in sets])
        for metric in ("accuracy", "gold_logprob"):
            row = rows.filter((pl.col("feature") == "mean") & (pl.col("layer") == layer) & (pl.col("metric") == metric))
            y = table[metric].to_numpy()
            assert row["rho"][0] == pytest.approx(stats.spearmanr(x, y).statistic)
            # five sets: the exact permutation p-value (all 120 pairings; accuracy has ties)
            exact = stats.permutation_test((x, y), lambda a, b: stats.spearmanr(a, b).statistic,
                                           permutation_type="pairings", n_resamples=10**6)
            assert row["pvalue"][0] == pytest.approx(exact.pvalue) and row["exact_p"][0]
            assert row["underpowered"][0] and row["detectable_rho"][0] > 0.9
    assert rows.filter(pl.col("feature") == "top1")["rho"].is_nan().all()  # constant: NaN, not 0


def test_task_side_p_values_are_exact_at_small_n_and_never_zero():
    """|rho| = 1 over four sets is p = 2/24, not 0; at n = 5 the exact p-value is a valid
    p-value exactly: over all 120 pairings, P(p <= c) equals c at every attainable c; beyond
    EXACT_MAX sets the t approximation of scipy.spearmanr is used."""
    from demoscope.stats.taskcorr import EXACT_MAX, exact_spearman_pvalue

    x = np.arange(4.0)[:, None]
    y = np.arange(4.0)[:, None]
    assert exact_spearman_pvalue(x, y, np.array([[1.0]]), np.array([[True]]))[0, 0] == pytest.approx(2 / 24)
    x = np.array([0.3, 1.2, -0.5, 2.2, 0.9])[:, None]
    y = np.array([1.0, 2.0, 2.0, 3.0, 5.0])  # a tie, as accuracies over few queries have
    orderings = np.array(list(itertools.permutations(range(5))))
    ys = y[orderings].T  # 5 x 120: every pairing of y with x
    rho = np.array([stats.spearmanr(x[:, 0], col).statistic for col in ys.T])[None]
    p = exact_spearman_pvalue(np.repeat(x, 1, 1), ys, rho, np.ones(rho.shape, bool))[0]
    for c in np.unique(p):
        assert (p <= c + 1e-12).mean() == pytest.approx(c)
    features = pl.DataFrame({"cand_id": np.arange(12), "layer": 0, "mean": np.random.default_rng(0).normal(size=12)})
    many = set_table([[i] for i in range(EXACT_MAX + 3)], np.random.default_rng(1).random((EXACT_MAX + 3, 9)) > 0.5,
                     np.random.default_rng(2).normal(size=(EXACT_MAX + 3, 9)))
    row = task_rho_rows(features, many, ["mean"]).filter(pl.col("metric") == "gold_logprob")
    x = features["mean"].to_numpy()[: EXACT_MAX + 3]
    assert not row["exact_p"][0] and row["pvalue"][0] == pytest.approx(stats.spearmanr(x, many["gold_logprob"]).pvalue)


def test_detectable_rho_agrees_with_a_direct_simulation():
    """Over the n where detectable_rho crosses 0.5 (33 sets at alpha 0.05), a population
    Spearman rho equal to it is detected (t test of spearmanr) in 80% +- 0.05 of simulations."""
    from demoscope.stats.taskcorr import UNDERPOWERED_RHO, detectable_rho

    assert detectable_rho(32) > UNDERPOWERED_RHO >= detectable_rho(33)
    assert np.isnan(detectable_rho(3)) and detectable_rho(16) == pytest.approx(0.70, abs=0.01)
    n, rng = 40, np.random.default_rng(4)
    target = float(detectable_rho(n))
    r = 2 * np.sin(np.pi * target / 6)  # the Pearson r of a normal pair whose Spearman rho is target
    z = rng.standard_normal((4000, n, 2))
    pairs = np.stack([z[..., 0], r * z[..., 0] + np.sqrt(1 - r * r) * z[..., 1]], -1)
    ranks = pairs.argsort(1).argsort(1).astype(float)
    ranks -= ranks.mean(1, keepdims=True)
    rho = (ranks[..., 0] * ranks[..., 1]).sum(1) / np.sqrt((ranks**2).sum(1).prod(-1))
    t = rho * np.sqrt((n - 2) / (1 - rho**2))
    power = (2 * stats.t.sf(np.abs(t), n - 2) < 0.05).mean()
    assert power == pytest.approx(0.8, abs=0.05)


def test_task_sets_score_the_full_grid(llama):
    model, tok, _ = llama
    sets = [[0, 1], [3, 2]]
    scored = score_pairs(model, tok, TEMPLATE, CANDIDATES, QUERIES, sets, None, "cpu", 64)
    assert scored["correct"].shape == (2, 3)
    demos = CANDIDATES["demonstration"].to_list()
    scores = naive_kshot(model, tok, [demos[3], demos[2]], QUERIES["query"][1], QUERIES["options"][1].to_list())
    assert scored["gold_logprob"][1, 1] == pytest.approx(scores[0], abs=1e-4)


# --- the strategies table -----------------------------------------------------------------------

def test_intervals():
    low, high = wilson(8, 16)
    assert (low, high) == pytest.approx((0.2800, 0.7200), abs=1e-4)  # the textbook Wilson interval
    assert wilson(16, 16)[1] == 1.0 and wilson(0, 16)[0] == 0.0
    values = np.array([0.5, 0.6, 0.7])
    expected = stats.t.interval(0.95, 2, loc=values.mean(), scale=stats.sem(values))
    assert t_interval(values) == pytest.approx(expected)


def run_of(name, correct, query_ids=None):
    query_ids = list(range(len(correct))) if query_ids is None else query_ids
    table = pl.DataFrame({"query_id": query_ids, "correct": correct, "gold_logprob": [-1.0] * len(correct)})
    return {"model": "m", "task": "t", "strategy": name, "detail": f"how {name}"}, table


def test_strategy_table_pools_random_seeds_and_marks_the_reference():
    evaluations = [run_of("votek", [True, False, True, True]), run_of("random-s1", [True, False, False, False]),
                   run_of("random-s0", [True, True, False, False]), run_of("quality_oracle", [True] * 4),
                   run_of("random-s2", [True, True, True, False])]
    table = strategy_table(evaluations)
    assert table["strategy"].to_list() == ["random", "quality_oracle", "votek"]
    random = table.row(0, named=True)
    assert random["n_seeds"] == 3 and random["mean_accuracy"] == pytest.approx(0.5)
    assert (random["ci_low"], random["ci_high"]) == pytest.approx(t_interval(np.array([0.5, 0.25, 0.75])))
    assert random["accuracies"] == "0.5000,0.2500,0.7500" and random["interval"] == "t over 3 seeds"
    assert random["vs_random_p"] is None and random["verdict"] == "underpowered"  # 4 queries
    assert random["random_set_sd"] == table.row(2, named=True)["random_set_sd"] >= 0
    oracle = table.row(1, named=True)
    assert oracle["reference"] and oracle["kind"] == "quality_oracle" and oracle["detail"] == "how quality_oracle"
    assert (oracle["ci_low"], oracle["ci_high"]) == pytest.approx(wilson(4, 4))
    assert not table.row(2, named=True)["reference"]
    for row in (oracle, table.row(2, named=True)):
        assert row["verdict"] == "underpowered" and not row["distinguishable"]


def test_identical_seeds_never_give_a_certain_interval():
    """Two seeds at the same accuracy: the t-interval over them has zero width; the queries are
    a sample too, so the interval is widened to Wilson over them, and the row says so."""
    table = strategy_table([run_of("random-s0", [True, False] * 3), run_of("random-s1", [False, True] * 3)])
    row = table.row(0, named=True)
    assert row["mean_accuracy"] == 0.5 and (row["ci_low"], row["ci_high"]) == pytest.approx(wilson(3, 6))
    assert row["interval"] == "t over 2 seeds, widened to Wilson over 6 queries" and row["verdict"] == "underpowered"


def test_strategies_are_compared_with_random_paired_by_query_id():
    """The comparison pairs by query id, not by row order; BH runs over the compared strategies
    of one model x task; on enough queries a clear gain is distinguishable."""
    from demoscope.stats import paired
    from demoscope.stats.fdr import bh_adjust

    rng = np.random.default_rng(5)
    q = 200
    # One seed: with several, their spread enters with seeds - 1 degrees of freedom (test_paired)
    random = rng.random((1, q)) < 0.5
    better = np.where(rng.random(q) < 0.5, True, random[0])  # right wherever random was, and on half the rest
    same = np.where(rng.random(q) < 0.1, ~random[0], random[0])  # differs on a tenth, either way
    order = rng.permutation(q)  # evaluation tables in another row order
    evaluations = [run_of("random-s0", random[0].tolist()),
                   run_of("similarity", better[order].tolist(), order.tolist()),
                   run_of("diversity", same[order[::-1]].tolist(), order[::-1].tolist())]
    table = strategy_table(evaluations, alpha=0.05)
    expected = [paired.paired_test(s.astype(float), random.astype(float), 0.05) for s in (better, same)]
    rows = [table.filter(pl.col("strategy") == name).row(0, named=True) for name in ("similarity", "diversity")]
    for row, want in zip(rows, expected):
        assert row["vs_random_diff"] == pytest.approx(float(want["diff"]))
        assert row["vs_random_p"] == pytest.approx(float(want["p"]))
        assert (row["vs_random_ci_low"], row["vs_random_ci_high"]) == pytest.approx((float(want["ci_low"]), float(want["ci_high"])))
    padj = bh_adjust([float(e["p"]) for e in expected])
    assert [r["vs_random_padj"] for r in rows] == pytest.approx(padj.tolist())
    assert rows[0]["verdict"] == "distinguishable from random" and rows[0]["distinguishable"]
    assert rows[1]["verdict"] == "not distinguishable" and rows[1]["vs_random_mdd"] <= 0.10
    with pytest.raises(ValueError, match="different test queries"):
        strategy_table(evaluations + [run_of("votek", [True] * (q - 1))])
    alone = strategy_table([run_of("votek", [True] * 4)])
    assert alone["verdict"].to_list() == ["no random baseline"] and alone["vs_random_p"].is_null().all()


def test_summary_task_section_sets_the_task_side_beside_the_quality_side():
    from demoscope.report.summary import task_section

    top = pl.DataFrame({"model": ["m", "m"], "task": ["a", "b"], "max_abs_rho": [0.2, 0.3],
                        "feature": ["mean", "top1"], "layer": [3, 4]})
    heading, text, table = task_section(None, top)
    assert heading == "Task performance" and table is None and "test_queries" in text
    rows = pl.DataFrame({"model": ["m"] * 3, "task": ["a", "a", "b"], "mask": ["causal"] * 3, "site": ["mlp_out"] * 3,
                         "feature": ["mean", "top1", "mean"], "layer": [1, 2, 1], "metric": ["accuracy"] * 3,
                         "rho": [0.1, -0.6, np.nan], "pvalue": [0.5, 0.01, np.nan], "n": [16, 16, 16]})
    _, _, table = task_section(rows, top)
    a, b = table.row(0, named=True), table.row(1, named=True)
    assert (a["task_max_abs_rho"], a["task_rho"], a["task_feature"], a["quality_max_abs_rho"]) == (0.6, -0.6, "top1", 0.2)
    assert a["task_tests"] == 2 and a["task_nan"] == 0
    assert b["task_max_abs_rho"] is None and b["task_nan"] == 1 and b["quality_max_abs_rho"] == 0.3


def test_generation_evaluation_decodes_each_prompt_alone(llama):
    from demoscope.data.answers import exact_match
    from demoscope.lm.generation import generate

    model, tok, _ = llama
    template = Template.from_config({"demonstration": "Question: {input}\nAnswer:{answer_prefix}{answer}",
                                     "query": "Question: {input}\nAnswer:"})
    candidates = pl.DataFrame({"cand_id": [0, 1], "label": ["", ""],
                               "demonstration": ["Question: rock gas?\nAnswer: 2 #### 2", "Question: sun?\nAnswer: 7 #### 7"]})
    queries = pl.DataFrame({"query_id": [0, 1], "query": ["Question: water heat?\nAnswer:", "Question: light?\nAnswer:"],
                            "answer": ["3 #### 3", "5 #### 5"]})
    selection = pl.DataFrame([(0, 0, 1), (1, 0, 0), (1, 1, 1)], schema=["query_id", "position", "cand_id"], orient="row")
    settings = {"max_new_tokens": 6, "min_new_tokens": 1, "stop": ["\n\n"]}
    got = evaluate_selection(model, tok, template, candidates, queries, selection, "cpu", 128, generation=settings)
    demos = candidates["demonstration"].to_list()
    for row, ids in zip(got.iter_rows(named=True), ([1], [0, 1])):
        prefix = tok(prefix_text(template, [demos[c] for c in ids])).input_ids
        query = tok("\n\n" + queries["query"][row["query_id"]], add_special_tokens=False).input_ids
        alone = generate(model, tok, [prefix], [query], None, "cpu", 6, ["\n\n"], 256, progress=False, min_new_tokens=1)[0]
        answer = queries["answer"][row["query_id"]]
        assert row["output"] == alone and row["correct"] == exact_match(alone, answer) and row["predicted"] == -1
        gold = tok(" " + answer, add_special_tokens=False).input_ids
        assert row["gold_logprob"] == pytest.approx(naive_option_lp(model, prefix + query, gold), abs=1e-4)


def test_length_batches_sort_by_length_and_fill_the_token_budget():
    lengths = [5, 2, 9, 2, 4, 30]
    batches = length_batches(lengths, batch_tokens=10)
    # Shortest first; each batch's rows x its longest length fits 10, except a lone row.
    assert batches == [[1, 3], [4, 0], [2], [5]]
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
