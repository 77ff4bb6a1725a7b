"""The retrievers (BM25, DPP, MDL, ConE) against brute-force readings of their definitions on
tiny problems, the contamination guard, and the sets files that travel to other tools."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter

import numpy as np
import polars as pl
import pytest
import torch

from demoscope.data import contamination
from demoscope.selection import retrievers
from demoscope.selection.evaluation import prefix_text
from demoscope.lm.lmscore import LMScorer
from demoscope.data.records import Record
from demoscope.selection.choose import select
from demoscope.selection.sets import lm_eval_samples, set_lines, write_sets
from demoscope.selection.strategies import PER_QUERY, instances, kind_of
from demoscope.data.templates import Template
from demoscope.lm.tokens import encode_text

from conftest import sentiment_rows

TEMPLATE = Template.from_config({"instruction": "Classify.", "demonstration": "{input}{answer_prefix}{answer}",
                                 "query": "{input}", "separator": "\n\n", "answer_prefix": " "})


def table(rows: list[dict], id_name: str, text: str) -> pl.DataFrame:
    records = [Record(id=f"r{i}", input=r["input"], answer=r["output"], options=tuple(r["options"]), label=r["output"])
               for i, r in enumerate(rows)]
    render = TEMPLATE.demonstration_text if text == "demonstration" else TEMPLATE.query_text
    return pl.DataFrame({
        id_name: list(range(len(records))), "record_id": [r.id for r in records], "input": [r.input for r in records],
        "answer": [r.answer for r in records], "label": [r.label for r in records],
        "options": [list(r.options) for r in records], "gold_index": [r.options.index(r.answer) for r in records],
        text: [render(r) for r in records],
    })


CANDIDATES = table(sentiment_rows(10, 11), "cand_id", "demonstration")
QUERIES = table(sentiment_rows(3, 12), "query_id", "query")


def embeddings_for(n_cands: int, n_tests: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n_cands + n_tests, 6))
    return pl.DataFrame({"set": ["candidate"] * n_cands + ["test"] * n_tests,
                         "id": list(range(n_cands)) + list(range(n_tests)),
                         "embedding": [row.tolist() for row in vectors]})


# --- BM25 ----------------------------------------------------------------------------------------

def brute_bm25(docs: list[list[str]], query: list[str], k1=1.5, b=0.75) -> np.ndarray:
    """Lucene's BM25 written out term by term (Lucene leaves out the (k1 + 1) factor of the
    numerator, which scales every score alike)."""
    n, avgdl = len(docs), sum(len(d) for d in docs) / len(docs)
    out = np.zeros(n)
    for term in query:
        df = sum(term in d for d in docs)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, d in enumerate(docs):
            tf = d.count(term)
            out[i] += idf * tf / (tf + k1 * (1 - b + b * len(d) / avgdl))
    return out


def test_bm25_scores_are_the_formula():
    texts = ["The plot was good, good acting.", "A dull film", "good music; dull plot", "sun and water"]
    queries = ["good plot", "dull dull film?", "nothing matches"]
    scores = retrievers.bm25_scores(texts, queries)
    for q, query in enumerate(queries):
        expected = brute_bm25([retrievers.words(t) for t in texts], retrievers.words(query))
        np.testing.assert_allclose(scores[q], expected, rtol=1e-5)
    assert (scores[2] == 0).all()


def test_bm25_selects_the_top_k_per_query_best_last():
    chosen = select({"kind": "bm25"}, CANDIDATES, 3, balance=False, queries=QUERIES)
    scores = retrievers.bm25_scores(CANDIDATES["input"].to_list(), QUERIES["input"].to_list())
    for q in range(QUERIES.height):
        part = chosen.filter(pl.col("query_id") == q).sort("position")
        order = sorted(range(CANDIDATES.height), key=lambda c: (-scores[q, c], c))[:3][::-1]
        assert part["cand_id"].to_list() == order
        np.testing.assert_allclose(part["score"].to_numpy(), scores[q, order])


# --- DPP -----------------------------------------------------------------------------------------

def brute_kernel(query, shortlist, scale):
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    n = len(shortlist)
    rel = [math.exp(((unit(shortlist[i]) @ unit(query) + 1) / 2) / (2 * scale)) for i in range(n)]
    return np.array([[rel[i] * ((unit(shortlist[i]) @ unit(shortlist[j]) + 1) / 2) * rel[j] for j in range(n)]
                     for i in range(n)])


def brute_greedy(kernel, k, labels=None):
    """Greedy MAP by determinants: each step adds the allowed item of largest det(L_S+i)."""
    chosen = []
    left = None if labels is None else Counter({lab: 0 for lab in labels})
    quota = None
    if labels is not None:
        from demoscope.data.sampling import allocate
        quota = allocate(k, dict(Counter(labels)))
    for _ in range(k):
        best, best_det = None, 0.0
        for i in range(len(kernel)):
            if i in chosen or (quota is not None and left[labels[i]] >= quota[labels[i]]):
                continue
            det = np.linalg.det(kernel[np.ix_(chosen + [i], chosen + [i])])
            if det > best_det * (1 + 1e-9) + 1e-300:
                best, best_det = i, det
        chosen.append(best)
        if left is not None:
            left[labels[best]] += 1
    return chosen


@pytest.mark.parametrize("seed", range(5))
def test_dpp_kernel_and_greedy_map_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    query, shortlist = rng.normal(size=4), rng.normal(size=(7, 4))
    kernel, relevance = retrievers.dpp_kernel(query, shortlist, 0.1 + 0.2 * seed)
    np.testing.assert_allclose(kernel, brute_kernel(query, shortlist, 0.1 + 0.2 * seed), rtol=1e-10)
    np.testing.assert_allclose(np.sqrt(np.diag(kernel)) / relevance, 1.0)
    assert retrievers.greedy_map(kernel, 3).tolist() == brute_greedy(kernel, 3)
    labels = list("aabbbab")
    assert retrievers.greedy_map(kernel, 4, labels).tolist() == brute_greedy(kernel, 4, labels)


def test_dpp_prefers_diverse_to_duplicate_candidates():
    # Two copies of the most relevant candidate: the k-DPP takes one and a different second.
    shortlist = np.array([[1.0, 0.1], [1.0, 0.1], [0.2, 1.0], [0.9, 0.3]])
    kernel, _ = retrievers.dpp_kernel(np.array([1.0, 0.0]), shortlist, 1.0)
    picked = retrievers.greedy_map(kernel, 2).tolist()
    assert picked[0] in (0, 1) and not {0, 1} <= set(picked)


def test_dpp_selection_reads_the_shortlist_and_orders_by_relevance():
    emb = embeddings_for(10, 3)
    spec = {"kind": "dpp", "candidates": 5, "scale": 0.1}
    chosen = select(spec, CANDIDATES, 2, balance=True, embeddings=emb, queries=QUERIES)
    from demoscope.selection.choose import prepared_embeddings
    cands, _, tests = prepared_embeddings(emb, CANDIDATES["cand_id"].to_numpy())
    labels = CANDIDATES["label"].to_numpy()
    for q in range(3):
        sim = tests[q] @ cands.T
        short = sorted(range(10), key=lambda c: (-sim[c], c))[:5]
        kernel = brute_kernel(tests[q], cands[short], 0.1)
        picked = [short[j] for j in brute_greedy(kernel, 2, list(labels[short]))]
        part = chosen.filter(pl.col("query_id") == q).sort("position")
        assert sorted(part["cand_id"].to_list()) == sorted(picked)
        assert part["score"][0] <= part["score"][1]  # most relevant last
        assert sorted(labels[part["cand_id"].to_list()]) == ["negative", "positive"]


# --- the model's scores: MDL and ConE -------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_lm(tiny_llama):
    from demoscope.lm import models

    torch.set_num_threads(1)
    return models.load(tiny_llama, "cpu", "float32")


def brute_span(model, ids: list[int], start: int, end: int) -> float:
    """Summed log-prob of ids[start:end] from one unbatched forward through the LM head."""
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    return float(sum(lp[t - 1, ids[t]] for t in range(start, end)))


def prompt_parts(tokenizer, demos: list[str], query: str, option: str | None = None):
    prefix = encode_text(tokenizer, prefix_text(TEMPLATE, demos), first=True)
    q = encode_text(tokenizer, TEMPLATE.separator + query, first=False)
    o = [] if option is None else encode_text(tokenizer, TEMPLATE.answer_prefix + option, first=False)
    return prefix, q, o


def test_cone_picks_the_candidates_of_lowest_query_cross_entropy(tiny_lm):
    model, tokenizer, device = tiny_lm
    emb = embeddings_for(10, 3, seed=1)
    scorer = LMScorer(model, tokenizer, TEMPLATE, CANDIDATES, QUERIES, device, batch_tokens=256)
    chosen = select({"kind": "cone", "candidates": 6}, CANDIDATES, 2, balance=False, embeddings=emb,
                    queries=QUERIES, scorer=scorer)
    from demoscope.selection.choose import prepared_embeddings
    cands, _, tests = prepared_embeddings(emb, CANDIDATES["cand_id"].to_numpy())
    demos = CANDIDATES["demonstration"].to_list()
    for q in range(3):
        sim = tests[q] @ cands.T
        short = sorted(range(10), key=lambda c: (-sim[c], c))[:6]
        logprob = {}
        for c in short:
            prefix, qids, _ = prompt_parts(tokenizer, [demos[c]], QUERIES["query"][q])
            logprob[c] = brute_span(model, prefix + qids, len(prefix), len(prefix) + len(qids))
        best = sorted(short, key=lambda c: (-logprob[c], c))[:2][::-1]
        part = chosen.filter(pl.col("query_id") == q).sort("position")
        assert part["cand_id"].to_list() == best
        np.testing.assert_allclose(part["score"].to_numpy(), [logprob[c] for c in best], rtol=1e-4)


def brute_mdl_entropy(model, tokenizer, demos: list[str], query: str, options: list[str]) -> float:
    """OpenICL's MDL: p(option) proportional to exp(-mean token CE of [query; option])."""
    scores = []
    for option in options:
        prefix, q, o = prompt_parts(tokenizer, demos, query, option)
        ids = prefix + q + o
        total = brute_span(model, ids, len(prefix), len(ids))
        scores.append(total / (len(q) + len(o)))
    p = np.exp(np.array(scores) - max(scores))
    p /= p.sum()
    return float(-(p * np.log(p)).sum())


def test_mdl_picks_the_ordering_of_lowest_label_entropy(tiny_lm):
    model, tokenizer, device = tiny_lm
    emb = embeddings_for(10, 3, seed=2)
    scorer = LMScorer(model, tokenizer, TEMPLATE, CANDIDATES, QUERIES, device, batch_tokens=512)
    spec = {"kind": "mdl", "candidates": 6, "subsets": 4}
    chosen = select(spec, CANDIDATES, 2, balance=True, seed=3, embeddings=emb, queries=QUERIES, scorer=scorer)
    from demoscope.selection.choose import prepared_embeddings
    cands, _, tests = prepared_embeddings(emb, CANDIDATES["cand_id"].to_numpy())
    demos, labels = CANDIDATES["demonstration"].to_list(), CANDIDATES["label"].to_numpy()
    for q in range(3):
        sim = tests[q] @ cands.T
        short = np.array(sorted(range(10), key=lambda c: (-sim[c], c))[:6])
        orderings = retrievers.mdl_orderings(short, 2, 4, np.random.default_rng([3, 2, q]), labels)
        assert len(orderings) == 4 and all(set(o) <= set(short) for o in orderings)
        # The first ordering is the nearest of each label, most similar last.
        other = next(c for c in short if labels[c] != labels[short[0]])
        assert orderings[0].tolist() == [other, short[0]]
        entropies = [brute_mdl_entropy(model, tokenizer, [demos[c] for c in o], QUERIES["query"][q],
                                       QUERIES["options"][q].to_list()) for o in orderings]
        best = int(np.argmin(entropies))
        part = chosen.filter(pl.col("query_id") == q).sort("position")
        assert part["cand_id"].to_list() == orderings[best].tolist()
        assert part["score"][0] == pytest.approx(entropies[best], rel=1e-4, abs=1e-6)
        assert sorted(labels[part["cand_id"].to_list()]) == ["negative", "positive"]


def test_mdl_orderings_start_with_the_nearest_and_are_seeded():
    short = np.array([7, 3, 9, 1, 4])
    labels = np.array(["a", "b"] * 5)
    first = retrievers.mdl_orderings(short, 2, 3, np.random.default_rng(0), labels)
    again = retrievers.mdl_orderings(short, 2, 3, np.random.default_rng(0), labels)
    assert [o.tolist() for o in first] == [o.tolist() for o in again]
    # Candidates 7, 3, 9, 1 have label b and 4 has a: the nearest of each, the most similar last.
    assert first[0].tolist() == [4, 7]
    assert all(sorted(labels[o]) == ["a", "b"] for o in first)


def test_label_entropy_is_the_openicl_formula():
    query_lp, query_len = np.array([-6.0, -2.0]), np.array([3.0, 2.0])
    option_lp = np.array([[-1.0, -3.0, np.nan], [-0.5, -0.5, -4.0]])
    option_len = np.array([[1.0, 2.0, np.nan], [1.0, 1.0, 2.0]])
    got = retrievers.label_entropy(query_lp, query_len, option_lp, option_len)
    for r in range(2):
        present = ~np.isnan(option_lp[r])
        mean_lp = (query_lp[r] + option_lp[r][present]) / (query_len[r] + option_len[r][present])
        p = np.exp(mean_lp) / np.exp(mean_lp).sum()
        assert got[r] == pytest.approx(-(p * np.log(p)).sum())


# --- contamination --------------------------------------------------------------------------------

def contaminated():
    """Candidate 2 carries test query 1's input (case and spacing aside)."""
    return CANDIDATES.with_columns(
        pl.when(pl.col("cand_id") == 2).then(pl.lit(QUERIES["input"][1].upper() + "  "))
        .otherwise(pl.col("input")).alias("input"))


@pytest.mark.parametrize("kind", ["random", "similarity", "bm25", "dpp", "diversity"])
def test_no_test_query_is_among_its_own_demonstrations(kind):
    cands = contaminated()
    emb = embeddings_for(10, 3, seed=4)
    # Every test query embeds exactly as candidate 2: the most similar candidate to each.
    vectors = np.asarray(emb["embedding"].to_list())
    vectors[10:] = vectors[2]
    emb = emb.with_columns(pl.Series("embedding", [row.tolist() for row in vectors]))
    spec = {"kind": kind, "seed": 0, "candidates": 5, "scale": 0.1}
    chosen = select(spec, cands, 3, balance=False, embeddings=emb, queries=QUERIES)
    if kind in PER_QUERY:
        assert 2 not in chosen.filter(pl.col("query_id") == 1)["cand_id"].to_list()
        if kind == "similarity":
            assert 2 in chosen.filter(pl.col("query_id") == 0)["cand_id"].to_list()  # query 0 may take it
    else:
        assert 2 not in chosen["cand_id"].to_list()
    contamination.check_selection(chosen, cands, QUERIES)


def test_check_selection_names_a_violation():
    bad = pl.DataFrame({"query_id": [-1], "position": [0], "cand_id": [2], "score": [0.0], "detail": [""]})
    with pytest.raises(ValueError, match="candidate 2 duplicates test query 1"):
        contamination.check_selection(bad, contaminated(), QUERIES)


def test_contamination_table_counts_duplicates_of_each_set():
    quality = table(sentiment_rows(4, 13), "query_id", "query")
    cands = contaminated().with_columns(
        pl.when(pl.col("cand_id").is_in([5, 6])).then(pl.lit(quality["input"][0])).otherwise(pl.col("input")).alias("input"))
    counts = contamination.contamination_table(cands, {"test": QUERIES, "quality": quality})
    assert counts.to_dicts() == [
        {"set": "test", "queries": 3, "candidates": 10, "duplicate_candidates": 1, "duplicated_queries": 1},
        {"set": "quality", "queries": 4, "candidates": 10, "duplicate_candidates": 2, "duplicated_queries": 1},
    ]
    heading, text, rows = contamination.summary_section({("tiny", "sst2"): counts})
    assert heading == "Contamination" and text.startswith("3 candidates (counted once per query set)")
    assert rows.row(1) == ("tiny", "sst2", "quality", 4, 10, 2, 1)
    from demoscope.report.summary import to_markdown
    assert "| tiny | sst2 | quality | 4 | 10 | 2 | 1 |" in to_markdown([(heading, text, rows)])


# --- sets that travel ----------------------------------------------------------------------------

def test_sets_files_for_a_shared_and_a_per_query_strategy(tmp_path):
    shared = select({"kind": "random", "seed": 1}, CANDIDATES, 2, balance=True, queries=QUERIES)
    write_sets(tmp_path / "r.jsonl", tmp_path / "r.json", "random-s1", {"kind": "random", "seed": 1}, shared,
               CANDIDATES, QUERIES)
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["query_id"] == -1 and lines[0]["settings"] == {"kind": "random", "seed": 1}
    ids = shared.sort("position")["cand_id"].to_list()
    assert lines[0]["cand_ids"] == ids
    assert lines[0]["demonstrations"] == [CANDIDATES["demonstration"][c] for c in ids]
    assert lines[0]["record_ids"] == [CANDIDATES["record_id"][c] for c in ids]
    # lm-evaluation-harness's fewshot_config.samples: a list of documents (dicts), in prompt order.
    samples = json.loads((tmp_path / "r.json").read_text())
    assert isinstance(samples, list) and len(samples) == 2 and all(isinstance(doc, dict) for doc in samples)
    assert [doc["input"] for doc in samples] == [CANDIDATES["input"][c] for c in ids]
    assert [doc["answer"] for doc in samples] == [CANDIDATES["answer"][c] for c in ids]
    assert set(samples[0]) == {"input", "answer", "options", "gold_index", "label", "record_id", "demonstration"}

    per_query = select({"kind": "bm25"}, CANDIDATES, 2, balance=False, queries=QUERIES)
    lines = set_lines("bm25", {"kind": "bm25"}, per_query, CANDIDATES, QUERIES)
    assert [line["query_id"] for line in lines] == [0, 1, 2]
    assert [line["test_record_id"] for line in lines] == QUERIES["record_id"].to_list()
    by_query = lm_eval_samples(per_query, CANDIDATES, QUERIES)
    assert list(by_query) == QUERIES["record_id"].to_list() and all(len(v) == 2 for v in by_query.values())


def test_new_kinds_are_named_and_carry_their_settings():
    named = instances({"strategies": ["bm25", "dpp", "mdl", "cone"], "dpp": {"candidates": 9, "scale": 0.2},
                       "mdl": {"candidates": 8, "subsets": 3}, "cone": {"candidates": 7}})
    assert named == {"bm25": {"kind": "bm25"}, "dpp": {"kind": "dpp", "candidates": 9, "scale": 0.2},
                     "mdl": {"kind": "mdl", "candidates": 8, "subsets": 3}, "cone": {"kind": "cone", "candidates": 7}}
    assert [kind_of(n) for n in named] == ["bm25", "dpp", "mdl", "cone"]


def test_option_scores_match_brute_force_for_single_and_multi_token_options(tiny_lm):
    model, tokenizer, device = tiny_lm
    queries = QUERIES.with_columns(pl.Series("options", [["negative", "positive"], ["good film", "bad", "sun and water"],
                                                         ["negative", "positive"]]))
    scorer = LMScorer(model, tokenizer, TEMPLATE, CANDIDATES, queries, device, batch_tokens=128)
    pairs = [(0, [3, 1]), (1, [2]), (2, []), (1, [0, 4, 5])]
    query_lp, query_len, option_lp, option_len = scorer.option_scores(pairs)
    demos = CANDIDATES["demonstration"].to_list()
    for p, (q, rows) in enumerate(pairs):
        options = queries["options"][q].to_list()
        for o, option in enumerate(options):
            prefix, qids, oids = prompt_parts(tokenizer, [demos[r] for r in rows], queries["query"][q], option)
            ids = prefix + qids + oids
            assert query_lp[p] == pytest.approx(brute_span(model, ids, len(prefix), len(prefix) + len(qids)), rel=1e-4)
            assert option_lp[p, o] == pytest.approx(brute_span(model, ids, len(prefix) + len(qids), len(ids)), rel=1e-4)
            assert option_len[p, o] == len(oids) and query_len[p] == len(qids)
        assert np.isnan(option_lp[p, len(options):]).all()
    assert (option_len[0, :2] == 1).all()  # the single-token path ran
    assert {int(n) for n in option_len[1][:3]} != {1}  # and the multi-token one
