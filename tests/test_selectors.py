"""Selectors on hand-made pools with known answers, and the selection tables built from signals."""

from collections import Counter

import numpy as np
import polars as pl
import pytest

from demoscope.selection import selectors
from demoscope.selection.choose import best_layer, select
from demoscope.selection.strategies import group, instances, kind_of


def on_circle(angles) -> np.ndarray:
    angles = np.asarray(angles, dtype=float)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_k_center_on_a_line():
    points = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    # The mean is 3.2: start at 3; then 10 is farthest (7 away); then 0 (3 away from 3).
    assert selectors.k_center(points, 3).tolist() == [3, 4, 0]
    # One pick per label: after 3 (label b) only label a may follow, and 0 is the farthest a.
    assert selectors.k_center(points, 2, labels=list("ababb")).tolist() == [3, 0]


# Cluster A (5 points near angle 0, densest at 0.05), cluster B (3 points near 1.55), one outlier.
CLUSTERS = on_circle([0, 0.02, 0.05, 0.09, 0.14, 1.5, 1.53, 1.6, 3.0])


def test_vote_k_on_clustered_points():
    # With 2 neighbours each, 0.05 gets 4 votes and wins. Its voters now count 1/10, so cluster
    # B wins next: 1.53 and 1.6 both have 3 votes (the outlier votes for both), the lower
    # index goes first. Then 1.6 (votes from 1.5 and the outlier, each discounted once: 0.2)
    # beats every A point (0.1) and the outlier, which nobody votes for.
    assert selectors.vote_k(CLUSTERS, 3, neighbours=2).tolist() == [2, 6, 7]
    # k-center, by contrast, goes for the outlier.
    assert 8 in selectors.k_center(CLUSTERS, 3).tolist()


def test_vote_k_respects_label_quota():
    labels = ["a"] * 5 + ["b"] * 4
    chosen = selectors.vote_k(CLUSTERS, 4, neighbours=2, labels=labels)
    assert Counter(labels[i] for i in chosen) == {"a": 2, "b": 2}
    assert chosen[0] == 2


def test_similarity_nearest_neighbours():
    candidates = on_circle([0, 0.3, 1.0, 2.0, 3.0])
    queries = on_circle([0.9, 2.6])
    # Query 0.9: nearest 1.0 then 0.3; query 2.6: 3.0 then 2.0. Most similar last.
    assert selectors.nearest(candidates, queries, 2).tolist() == [[1, 2], [3, 4]]
    # One of each label: the nearest b of query 0.9 is 2.0, the nearest a of query 2.6 is 1.0.
    assert selectors.nearest(candidates, queries, 2, labels=list("aaabb")).tolist() == [[3, 2], [2, 4]]
    # Cosine similarity: a candidate's length does not matter.
    assert selectors.nearest(candidates * [[1], [5], [1], [1], [1]], queries, 1).tolist() == [[2], [4]]


def test_top_k_order_ties_nan_and_labels():
    scores = [0.5, np.nan, 0.9, 0.5, 0.1]
    assert selectors.top_k(scores, 3).tolist() == [2, 0, 3]  # tie: lower index first
    assert selectors.top_k(scores, 3, largest=False).tolist() == [4, 0, 3]
    assert selectors.top_k([1, 1, 1, 0], 2, tiebreak=[0, 2, 1, 5]).tolist() == [1, 2]
    assert selectors.top_k(scores, 2, labels=list("aabbb")).tolist() == [2, 0]
    with pytest.raises(ValueError, match="only 4 candidates"):
        selectors.top_k(scores, 5)


def test_label_quota_follows_the_pool():
    # 4 picks, labels a (5 candidates) and b (1): b gives what it has.
    quota = selectors.Quota(["a"] * 5 + ["b"], 4)
    assert quota.left == {"a": 3, "b": 1}
    labels = ["a"] * 5 + ["b"]
    chosen = selectors.random_k(6, 4, np.random.default_rng(0), labels=labels)
    assert Counter(labels[i] for i in chosen) == {"a": 3, "b": 1}


def test_random_k_is_balanced_and_seeded():
    labels = list("aaaaaaaabb")
    first = selectors.random_k(10, 4, np.random.default_rng(3), labels)
    assert first.tolist() == selectors.random_k(10, 4, np.random.default_rng(3), labels).tolist()
    assert Counter(labels[i] for i in first) == {"a": 2, "b": 2}
    assert len(set(first.tolist())) == 4


def test_strategy_instances_are_named_from_config():
    selection = {
        "strategies": ["random", "activation", "quality_oracle", "similarity", "diversity", "uncertainty", "votek"],
        "seeds": [0, 5],
        "activation": [{"feature": "mean", "layer": "best", "mask": "causal", "site": "mlp_out"},
                       {"feature": "top1", "layer": 3, "mask": "causal", "site": "resid", "lens": "sae"}],
        "best_layer_metric": "gold_logprob",
        "votek": {"neighbours": 5, "rho": 10},
    }
    named = instances(selection)
    assert list(named) == [
        "random-s0", "random-s5",
        "activation-mean-Lbest-causal-mlp_out-top", "activation-mean-Lbest-causal-mlp_out-bottom",
        "activation-sae-top1-L3-causal-resid-top", "activation-sae-top1-L3-causal-resid-bottom",
        "quality_oracle", "similarity", "diversity", "uncertainty-most", "uncertainty-least", "votek",
    ]
    assert named["activation-mean-Lbest-causal-mlp_out-top"]["quality"] == "gold_logprob"
    assert "quality" not in named["activation-sae-top1-L3-causal-resid-top"]
    assert named["votek"] == {"kind": "votek", "neighbours": 5, "rho": 10}
    assert [group(n) for n in ("random-s5", "votek")] == ["random", "votek"]
    assert [kind_of(n) for n in named] == [
        "random", "random", "activation", "activation", "activation", "activation", "quality_oracle",
        "similarity", "diversity", "uncertainty", "uncertainty", "votek",
    ]


# --- selection tables from signal tables --------------------------------------------------------

CANDIDATES = pl.DataFrame({"cand_id": [0, 1, 2, 3, 4, 5], "label": ["neg", "pos"] * 3})


def features_table():
    # Feature `mean` at layer 0 rises with cand_id, at layer 1 falls.
    return pl.DataFrame({"cand_id": [c for c in range(6) for _ in range(2)], "layer": [0, 1] * 6,
                         "mean": [v for c in range(6) for v in (float(c), float(-c))]})


def test_activation_top_and_bottom_at_a_fixed_and_the_best_layer():
    spec = {"kind": "activation", "feature": "mean", "layer": 0, "mask": "causal", "site": "mlp_out"}
    top = select({**spec, "direction": "top"}, CANDIDATES, 2, balance=False, features=features_table())
    assert top["cand_id"].to_list() == [5, 4] and (top["query_id"] == -1).all()
    assert top["score"].to_list() == [5.0, 4.0]
    bottom = select({**spec, "direction": "bottom"}, CANDIDATES, 2, balance=True, features=features_table())
    assert bottom["cand_id"].to_list() == [0, 1]  # one neg, one pos
    correlations = pl.DataFrame({"feature": ["mean"] * 4, "layer": [0, 1, 0, 1], "quality": ["accuracy"] * 2 + ["gold_logprob"] * 2,
                                 "rho": [0.1, -0.4, 0.9, 0.0]})
    best = select({**spec, "layer": "best", "quality": "accuracy", "direction": "top"}, CANDIDATES, 2, balance=False,
                  features=features_table(), correlations=correlations)
    assert best["cand_id"].to_list() == [0, 1]  # layer 1, where mean = -cand_id
    assert "layer 1" in best["detail"][0]


def test_best_layer_falls_back_to_the_middle_when_every_rho_is_nan():
    correlations = pl.DataFrame({"feature": ["mean"] * 5, "layer": list(range(5)), "quality": ["accuracy"] * 5,
                                 "rho": [np.nan] * 5})
    assert best_layer(correlations, "mean", "accuracy")[0] == 2


def test_best_layer_of_a_degenerate_metric_is_the_middle_layer_and_says_why():
    """A degenerate metric (GSM8K's accuracy at 0 for most candidates) is never correlated: its
    rows are absent, and the shortcut says so rather than failing."""
    correlations = pl.DataFrame({"feature": ["mean"] * 5, "layer": list(range(5)), "quality": ["gold_logprob"] * 5,
                                 "rho": [0.1, 0.5, -0.2, 0.3, 0.0]})
    layer, detail = best_layer(correlations, "mean", "accuracy", list(range(5)))
    assert layer == 2 and "degenerate" in detail
    with pytest.raises(ValueError, match="no rows for feature 'median'"):
        best_layer(correlations, "median", "gold_logprob", list(range(5)))


def test_quality_oracle_and_uncertainty():
    quality = pl.DataFrame({"cand_id": [5, 4, 3, 2, 1, 0], "accuracy": [0.5, 0.5, 0.9, 0.1, 0.5, 0.2],
                            "gold_logprob": [-1.0, -0.5, -2.0, -1.0, -3.0, -1.0]})
    oracle = select({"kind": "quality_oracle"}, CANDIDATES, 3, balance=False, quality=quality)
    assert oracle["cand_id"].to_list() == [3, 4, 5]  # 0.9, then the 0.5 tie by gold log-prob
    zero_shot = pl.DataFrame({"cand_id": list(range(6)), "uncertainty": [0.1, 0.9, 0.15, 0.2, 0.8, 0.3]})
    most = select({"kind": "uncertainty", "end": "most"}, CANDIDATES, 2, balance=False, zero_shot=zero_shot)
    assert most["cand_id"].to_list() == [1, 4]
    least = lambda balance: select({"kind": "uncertainty", "end": "least"}, CANDIDATES, 2, balance,  # noqa: E731
                                   zero_shot=zero_shot)["cand_id"].to_list()
    assert least(False) == [0, 2] and least(True) == [0, 3]  # 0 and 2 are both neg


def embeddings_table(cands: np.ndarray, tests: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"set": ["candidate"] * len(cands) + ["test"] * len(tests),
                         "id": list(range(len(cands))) + [10 + i for i in range(len(tests))],
                         "embedding": [row.tolist() for row in np.concatenate([cands, tests])]})


def test_similarity_writes_one_set_per_test_query():
    rng = np.random.default_rng(0)
    table = embeddings_table(rng.normal(size=(6, 4)), rng.normal(size=(3, 4)))
    chosen = select({"kind": "similarity"}, CANDIDATES, 2, balance=True, embeddings=table)
    assert chosen["query_id"].unique().sort().to_list() == [10, 11, 12]
    for _, part in chosen.group_by("query_id"):
        assert part["position"].to_list() == [0, 1]
        assert part["score"][0] <= part["score"][1]  # most similar last
        assert sorted(CANDIDATES["label"][part["cand_id"].to_list()]) == ["neg", "pos"]


def test_random_depends_on_its_seed_and_the_run_seed():
    ids = lambda seed, run: select({"kind": "random", "seed": seed}, CANDIDATES, 3, False, run)["cand_id"].to_list()  # noqa: E731
    assert ids(0, 0) == ids(0, 0)
    assert len({tuple(ids(s, r)) for s in range(4) for r in range(2)}) > 1
