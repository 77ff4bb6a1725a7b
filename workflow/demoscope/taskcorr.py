"""The task-performance side of the study: do activation features predict k-shot accuracy?

P random k-shot sets (label-balanced like the selectors' sets) are each evaluated on the test
queries; for every feature at every layer of a store, Spearman rho is taken over the P sets
between the set's mean feature value (over its k demonstrations) and the set's accuracy, and
its mean gold log-prob.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .correlate import spearman_columns, spearman_pvalue
from .rhotable import feature_matrix
from .selectors import random_k

METRICS = ("accuracy", "gold_logprob")


def random_sets(cand_ids, k: int, count: int, seed: int, labels=None) -> list[list[int]]:
    """`count` random k-sets of candidate ids; set p is drawn from the generator seeded
    [seed, 1, p] (the random strategy uses [seed, 0, s]), so adding sets keeps the others."""
    cand_ids = np.asarray(cand_ids)
    return [cand_ids[random_k(len(cand_ids), k, np.random.default_rng([seed, 1, p]), labels)].tolist() for p in range(count)]


def set_table(sets: list[list[int]], correct: np.ndarray, gold_logprob: np.ndarray) -> pl.DataFrame:
    """One row per set: its candidate ids in prompt order, accuracy and mean gold log-prob over
    the test queries (correct, gold_logprob: sets x queries)."""
    return pl.DataFrame(
        {
            "set_id": list(range(len(sets))),
            "cand_ids": sets,
            "accuracy": correct.mean(axis=1).astype(float),
            "gold_logprob": np.nanmean(gold_logprob, axis=1) if np.isfinite(gold_logprob).any() else np.full(len(sets), np.nan),
        },
        schema_overrides={"cand_ids": pl.List(pl.Int64)},
    )


def task_rho_rows(features: pl.DataFrame, sets: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """feature, layer, metric, rho, pvalue, n: rho over the sets between each feature's mean
    over a set's demonstrations and the set's performance. NaN, never 0, where a side is
    constant (every set equally accurate, say)."""
    members = sets["cand_ids"].to_list()
    pool = np.unique(np.concatenate([np.asarray(m) for m in members]))
    values, layers = feature_matrix(features, pool, names)  # pool x (layers * features)
    rows = [np.searchsorted(pool, m) for m in members]
    x = np.stack([values[r].mean(axis=0) for r in rows])  # sets x (layers * features)
    y = sets.select(METRICS).to_numpy().astype(float)
    rho, n = spearman_columns(x, y)
    rho = rho[0]
    column = np.arange(rho.shape[0])
    return pl.DataFrame(
        {
            "feature": np.repeat(np.array(names)[column % len(names)], len(METRICS)),
            "layer": np.repeat(np.array(layers)[column // len(names)], len(METRICS)),
            "metric": np.tile(METRICS, rho.shape[0]),
            "rho": rho.ravel(),
            "pvalue": spearman_pvalue(rho, n).ravel(),
            "n": n.ravel(),
        }
    ).sort("metric", "feature", "layer")
