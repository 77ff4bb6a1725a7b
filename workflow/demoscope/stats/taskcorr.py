"""The task-performance side of the study: do activation features predict k-shot accuracy?

P random k-shot sets (label-balanced like the selectors' sets) are each evaluated on the test
queries; for every feature at every layer of a store, Spearman rho is taken over the P sets
between the set's mean feature value (over its k demonstrations) and the set's accuracy, and
its mean gold log-prob.

P is small (16 by default, 4 for GSM8K), so the p-values and the power are stated for it:

- p-value: exact at n <= EXACT_MAX sets, by enumerating every assignment of one side's ranks
  to the other's (n! of them; ties keep their midranks), two-sided (|rho| at least the
  observed); beyond that the t approximation `scipy.stats.spearmanr` uses. At n = 4 the exact
  p-value of |rho| = 1 is 2/24 = 0.083, where the t approximation says 0.
- `detectable_rho`: the smallest |rho| a two-sided test at alpha detects with 80% power over n
  sets, from Fisher's z with the Bonett-Wright standard error sqrt((1 + rho^2 / 2) / (n - 3)):
  the rho solving atanh(rho) = (z_{1-alpha/2} + z_{0.8}) * se(rho). `underpowered` when it is
  above UNDERPOWERED_RHO = 0.5 (or n <= 3); at alpha 0.05 that takes n >= 33 sets.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import polars as pl
from scipy import stats

from demoscope.stats.correlate import spearman_columns, spearman_pvalue
from demoscope.stats.power import bonett_wright_se
from demoscope.stats.rhotable import feature_matrix, rho_table
from demoscope.selection.selectors import random_k

METRICS = ("accuracy", "gold_logprob")
EXACT_MAX = 9  # 9! = 362,880 rank assignments, enumerated in a fraction of a second
UNDERPOWERED_RHO = 0.5
POWER = 0.8


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


def task_rho_rows(features: pl.DataFrame, sets: pl.DataFrame, names: list[str], alpha: float = 0.05) -> pl.DataFrame:
    """feature, layer, metric, rho, pvalue, exact_p, n, detectable_rho, underpowered: rho over
    the sets between each feature's mean over a set's demonstrations and the set's performance.
    NaN, never 0, where a side is constant (every set equally accurate, say)."""
    members = sets["cand_ids"].to_list()
    pool = np.unique(np.concatenate([np.asarray(m) for m in members]))
    values, layers = feature_matrix(features, pool, names)  # pool x (layers * features)
    rows = [np.searchsorted(pool, m) for m in members]
    x = np.stack([values[r].mean(axis=0) for r in rows])  # sets x (layers * features)
    y = sets.select(METRICS).to_numpy().astype(float)
    rho, n = spearman_columns(x, y)
    rho = rho[0]
    exact = (n <= EXACT_MAX) & np.isfinite(rho)
    pvalue = np.where(exact, exact_spearman_pvalue(x, y, rho, exact), spearman_pvalue(rho, n))
    detectable = detectable_rho(n, alpha)
    columns = {
        "rho": rho,
        "pvalue": pvalue,
        "exact_p": exact,
        "n": n,
        "detectable_rho": detectable,
        "underpowered": ~(detectable <= UNDERPOWERED_RHO),
    }
    return rho_table(names, layers, METRICS, columns, metric_column="metric")


def exact_spearman_pvalue(x: np.ndarray, y: np.ndarray, rho: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Two-sided exact permutation p-value of rho (p x q) for the columns of x (n x p) against y
    (n x q) where `which` (p x q) is set, over the finite pairs; NaN elsewhere. The null of one
    column depends only on its two multisets of ranks, so columns that share them (untied
    features: all of them) share one enumeration."""
    out = np.full(rho.shape, np.nan)
    nulls: dict[tuple, np.ndarray] = {}
    for i, j in zip(*np.nonzero(which)):
        finite = np.isfinite(x[:, i]) & np.isfinite(y[:, j])
        x_ranks = np.sort(stats.rankdata(x[finite, i]))
        y_ranks = stats.rankdata(y[finite, j])
        key = (finite.tobytes(), x_ranks.tobytes(), j)
        if key not in nulls:
            nulls[key] = np.sort(np.abs(_permutation_rhos(x_ranks, y_ranks)))
        null = nulls[key]
        # |rho| at least the observed, with room for rounding (equal rank sums give equal rho)
        out[i, j] = (null.size - np.searchsorted(null, abs(rho[i, j]) - 1e-9)) / null.size
    return out


def _permutation_rhos(x_ranks: np.ndarray, y_ranks: np.ndarray) -> np.ndarray:
    """rho of y_ranks against every ordering of x_ranks (n! values); NaN-free when neither is constant."""
    orders = _orders(len(x_ranks))
    xs = (x_ranks - x_ranks.mean()) / np.sqrt(((x_ranks - x_ranks.mean()) ** 2).sum())
    ys = (y_ranks - y_ranks.mean()) / np.sqrt(((y_ranks - y_ranks.mean()) ** 2).sum())
    return xs[orders] @ ys


@functools.lru_cache(maxsize=None)
def _orders(n: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(n))), dtype=np.int8).reshape(-1, n)


def detectable_rho(n, alpha: float = 0.05, power: float = POWER) -> np.ndarray:
    """The smallest |rho| a two-sided test at `alpha` detects with `power` over n pairs (Fisher z,
    Bonett-Wright standard error); NaN at n <= 3. Fixed-point iteration: se grows with rho,
    so the solution is the limit from rho = 0 upwards."""
    n = np.asarray(n, dtype=float)
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(n > 3, n - 3, np.nan)
        r = np.tanh(z / np.sqrt(df))
        for _ in range(100):
            r = np.tanh(z * bonett_wright_se(r, n))
    return r
