"""Simulation tests of the statistics behind the verdict: each where its answer is known."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from demoscope.stats.correlate import spearman_columns
from demoscope.stats.degenerate import degenerate_reason, usable_metrics
from demoscope.stats.headline import verdict
from demoscope.stats.maxnull import family_pvalue, null_table, permutations, permuted_abs_rho_max
from demoscope.stats.power import detectable_rho, tost_power, tost_pvalue
from demoscope.stats.reliability import balanced_halves, spearman_brown, split_half, summarise_splits

ALPHA, BOUND = 0.05, 0.33


def layered_features(rng, runs: int, n: int, columns: int, layers: int) -> np.ndarray:
    """(runs x n x columns*layers) features, each feature an AR(1) walk over layers (rho 0.9):
    neighbouring layers are strongly correlated, as in a real store."""
    steps = rng.normal(size=(runs, n, columns, layers))
    walk = np.empty_like(steps)
    walk[..., 0] = steps[..., 0]
    for layer in range(1, layers):
        walk[..., layer] = 0.9 * walk[..., layer - 1] + np.sqrt(1 - 0.81) * steps[..., layer]
    return walk.reshape(runs, n, columns * layers)


def p_max(x: np.ndarray, y: np.ndarray, perms: np.ndarray) -> float:
    observed = np.nanmax(np.abs(spearman_columns(x, y)[0][0]))
    null = permuted_abs_rho_max(x, y, perms).max(axis=1)
    return float(family_pvalue(observed, null))


def test_permuted_maxima_equal_a_brute_force_loop():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 12)), rng.normal(size=(30, 2))
    x[4, 3] = np.nan  # a column with a missing value is ranked over its finite rows
    x[:, 7] = 1.0  # a constant column never counts
    y[:, 1] = np.round(y[:, 1])  # ties
    perms = permutations(30, 40, 0, "model", "task")
    brute = np.array([[np.nanmax(np.abs(spearman_columns(x, y[p])[0][0][:, m])) for m in range(2)] for p in perms])
    assert permuted_abs_rho_max(x, y, perms) == pytest.approx(brute, abs=1e-12)


def test_permutations_are_fixed_by_seed_and_names():
    a, b = permutations(20, 5, 0, "m", "t"), permutations(20, 5, 0, "m", "t")
    assert (a == b).all() and (np.sort(a, axis=1) == np.arange(20)).all()
    assert not (a == permutations(20, 5, 0, "m", "other")).all()


def test_null_table_splits_the_null_by_lens():
    rng = np.random.default_rng(1)
    cand = np.arange(12)
    features = pl.DataFrame({"cand_id": np.repeat(cand, 2), "layer": np.tile([0, 1], 12),
                             "mean": rng.normal(size=24), "top1": rng.normal(size=24)})
    quality = pl.DataFrame({"cand_id": cand, "accuracy": rng.normal(size=12)})
    perms = permutations(12, 30, 0, "m", "t")
    table = null_table(features, quality, ["mean", "top1"], ["accuracy"], perms)
    assert set(table["lens"]) == {"moments", "massive"} and table.height == 60
    whole = permuted_abs_rho_max(np.column_stack([features.filter(pl.col("layer") == l)[c].to_numpy()
                                                  for l in (0, 1) for c in ("mean", "top1")]),
                                 quality.select("accuracy").to_numpy(), perms)[:, 0]
    by_perm = table.group_by("permutation").agg(pl.col("max_abs_rho").max()).sort("permutation")
    assert by_perm["max_abs_rho"].to_numpy() == pytest.approx(whole)


def test_family_pvalue_counts_the_observed_statistic_and_is_never_zero():
    null = np.array([0.1, 0.2, 0.3, 0.4])
    assert family_pvalue(np.array([0.5, 0.3, 0.05, np.nan]), null) == pytest.approx([0.2, 0.6, 1.0, np.nan], nan_ok=True)


def test_verdict_is_rarely_signal_when_quality_is_independent_of_features():
    """Default shapes: 40 candidates, features correlated across 30 layers, two metrics (one
    with the ties of an 8-query accuracy). The max-T p-value holds the family-wise rate."""
    rng = np.random.default_rng(2)
    runs, n = 200, 40
    x = layered_features(rng, runs, n, 10, 30)
    signal = 0
    for run in range(runs):
        y = np.column_stack([rng.integers(0, 9, n) / 8, rng.normal(size=n)])
        perms = permutations(n, 199, run, "null")
        p = p_max(x[run], y, perms)
        signal += verdict(True, p, ALPHA, 0.0, 0.2, BOUND) == "signal"
    assert signal / runs <= 0.10


def test_verdict_finds_a_planted_rho_of_one_half_at_200_candidates():
    rng = np.random.default_rng(3)
    runs, n = 100, 200
    x = layered_features(rng, runs, n, 10, 30)
    pearson = 2 * np.sin(np.pi * 0.5 / 6)  # Spearman 0.5 for bivariate normal data
    signal = 0
    for run in range(runs):
        planted = x[run, :, 17]
        y = (pearson * planted + np.sqrt(1 - pearson**2) * rng.normal(size=n))[:, None]
        perms = permutations(n, 199, run, "planted")
        signal += verdict(True, p_max(x[run], y, perms), ALPHA, 0.0, 0.2, BOUND) == "signal"
    assert signal / runs >= 0.90


def test_split_half_reliability_recovers_a_known_reliability():
    """Candidate i's outcome on query q is t_i + e_iq: reliability of the mean over Q queries is
    var(t) / (var(t) + var(e) / Q)."""
    rng = np.random.default_rng(4)
    n, queries = 300, 16
    labels = np.tile([0, 1], queries // 2)
    for noise in (4.0, 16.0):
        known = 1 / (1 + noise / queries)
        estimates = []
        for _ in range(8):
            outcomes = rng.normal(size=(n, 1)) + rng.normal(scale=np.sqrt(noise), size=(n, queries))
            estimates.append(summarise_splits(split_half(outcomes, labels, 200, rng))["reliability"])
        assert np.mean(estimates) == pytest.approx(known, abs=0.05)


def test_anti_correlated_halves_stay_within_minus_one():
    """Two queries whose outcomes run against each other: the raw r, never Spearman-Brown's
    values below -1."""
    rng = np.random.default_rng(8)
    a = rng.normal(size=50)
    outcomes = np.column_stack([a, -a + 0.1 * rng.normal(size=50)])
    values = split_half(outcomes, np.array([0, 1]), 20, rng)
    assert (values >= -1).all() and (values < -0.9).all()


def test_halves_are_label_balanced_and_spearman_brown_steps_up():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    halves = balanced_halves(labels, 50, np.random.default_rng(5))
    per_label = [halves[:, labels == lab].sum(axis=1) for lab in (0, 1)]
    assert set(per_label[0]) <= {1, 2} and set(per_label[1]) <= {2, 3}
    assert spearman_brown(0.5, 2) == pytest.approx(2 / 3) and spearman_brown(0.5, 1) == pytest.approx(0.5)


def spearman_draws(rng, rho: float, n: int, runs: int) -> np.ndarray:
    """Spearman rho of `runs` samples of n bivariate-normal pairs whose Spearman rho is `rho`."""
    pearson = 2 * np.sin(np.pi * rho / 6)
    a = rng.normal(size=(runs, n))
    b = pearson * a + np.sqrt(1 - pearson**2) * rng.normal(size=(runs, n))
    ra, rb = stats.rankdata(a, axis=1), stats.rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    return (ra * rb).sum(axis=1) / np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))


@pytest.mark.parametrize("n, critical", [(200, 0.27), (60, 0.45)])
def test_detectable_rho_has_the_stated_power_in_a_direct_simulation(n, critical):
    rng = np.random.default_rng(6)
    r = detectable_rho(critical, n, 0.8)
    assert critical < r < 1
    draws = spearman_draws(rng, r, n, 4000)
    assert (np.abs(draws) > critical).mean() == pytest.approx(0.8, abs=0.05)


@pytest.mark.parametrize("rho", [0.0, 0.15, BOUND])
def test_tost_rejects_as_often_as_its_analytic_power_and_at_most_alpha_on_the_bound(rho):
    rng = np.random.default_rng(7)
    n = 200
    draws = spearman_draws(rng, rho, n, 4000)
    rejected = (tost_pvalue(draws, n, BOUND) < ALPHA).mean()
    assert rejected == pytest.approx(tost_power(rho, n, BOUND, ALPHA), abs=0.05)
    if rho == BOUND:
        assert rejected <= ALPHA + 0.02


def test_tost_pvalue_is_nan_where_rho_is_undefined():
    assert np.isnan(tost_pvalue(np.nan, 40, BOUND)) and np.isnan(tost_pvalue(0.1, 3, BOUND))


def test_degenerate_metrics_are_named_and_left_out():
    assert degenerate_reason([0.0] * 11 + [1.0]) == "2 distinct values"
    assert degenerate_reason([0.0] * 9 + [0.5, 0.7, 1.0]) is None  # 9 of 12 share a value: 75% < 80%
    assert degenerate_reason([0.0] * 10 + [0.5, 1.0]).startswith("83% of candidates")
    assert degenerate_reason(np.linspace(0, 1, 12)) is None
    quality = pl.DataFrame({"accuracy": [0.0] * 11 + [1.0], "gold_logprob": np.linspace(-3, -1, 12)})
    assert usable_metrics(quality, ["accuracy", "gold_logprob"]) == ["gold_logprob"]


def test_verdict_order():
    assert verdict(False, 0.001, ALPHA, 1.0, 0.1, BOUND) == "degenerate quality"
    assert verdict(True, 0.01, ALPHA, 1.0, 0.1, BOUND) == "signal"
    assert verdict(True, 0.5, ALPHA, 1.0, 0.1, BOUND) == "bounded below the study's 0.33"
    assert verdict(True, 0.5, ALPHA, 0.9, 0.5, BOUND) == "underpowered"
    assert verdict(True, 0.5, ALPHA, 0.9, np.nan, BOUND) == "underpowered"
    assert verdict(True, 0.5, ALPHA, 0.9, 0.25, BOUND) == "no signal detected"
