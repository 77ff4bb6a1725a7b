"""Bootstrap intervals, Benjamini-Hochberg adjustment, partial Spearman and the headline."""

import numpy as np
import polars as pl
import pytest
from scipy import stats

from demoscope.stats.bootstrap import bootstrap_interval, resample_rng
from demoscope.stats.correlate import spearman
from demoscope.stats.fdr import bh_adjust, with_adjusted
from demoscope.stats.headline import headline
from demoscope.stats.partial import indicators, partial_spearman


def correlated(n, rho, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x[:, None], (rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n))[:, None]


def test_interval_contains_the_estimate_and_shrinks_with_n():
    widths = []
    for n in (30, 120, 480):
        x, y = correlated(n, 0.5, seed=n)
        low, high = bootstrap_interval(x, y, 400, resample_rng(0, "m", "t"))
        rho = spearman(x[:, 0], y[:, 0])[0]
        assert low[0, 0] < rho < high[0, 0]
        widths.append(high[0, 0] - low[0, 0])
    assert widths[0] > widths[1] > widths[2]
    # Width shrinks like 1/sqrt(n): sixteen times the candidates, about a quarter of the width.
    assert widths[2] / widths[0] == pytest.approx(0.25, abs=0.12)


def test_interval_is_seeded_and_its_level_matters():
    x, y = correlated(60, 0.3, seed=1)
    first = np.ravel(bootstrap_interval(x, y, 300, resample_rng(7, "m", "t")))
    again = np.ravel(bootstrap_interval(x, y, 300, resample_rng(7, "m", "t")))
    other = np.ravel(bootstrap_interval(x, y, 300, resample_rng(8, "m", "t")))
    task = np.ravel(bootstrap_interval(x, y, 300, resample_rng(7, "m", "u")))
    assert np.array_equal(first, again) and not np.array_equal(first, other) and not np.array_equal(first, task)
    narrow = np.ravel(bootstrap_interval(x, y, 300, resample_rng(7, "m", "t"), level=0.5))
    assert first[0] < narrow[0] and narrow[1] < first[1]


def test_interval_is_nan_where_rho_is_undefined():
    x = np.c_[np.arange(20.0), np.ones(20)]
    low, high = bootstrap_interval(x, np.arange(20.0)[:, None] % 7, 100, resample_rng(0))
    assert np.isfinite(low[0, 0]) and np.isnan(low[1, 0]) and np.isnan(high[1, 0])


def test_bh_matches_scipy_and_skips_nan():
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(size=200), rng.uniform(0, 1e-3, size=20), [0.01, 0.01, 1.0]])
    assert bh_adjust(p) == pytest.approx(stats.false_discovery_control(p, method="bh"), rel=1e-12)
    with_nan = np.insert(p, [0, 50, 100], np.nan)
    adjusted = bh_adjust(with_nan)
    assert np.isnan(adjusted[[0, 51, 102]]).all()
    assert adjusted[~np.isnan(with_nan)] == pytest.approx(stats.false_discovery_control(p), rel=1e-12)
    table = with_adjusted(pl.DataFrame({"pvalue": with_nan}))
    assert table["padj"].to_numpy() == pytest.approx(adjusted, nan_ok=True)


def hand_partial(x, y, length, labels):
    """Rank x, y and length; regress the ranks of x and y on [1, rank(length), label dummies]; correlate."""
    levels = sorted(set(labels))
    design = np.column_stack(
        [np.ones(len(x)), stats.rankdata(length)] + [[float(lab == level) for lab in labels] for level in levels[1:]]
    )
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    ex = rx - design @ np.linalg.lstsq(design, rx, rcond=None)[0]
    ey = ry - design @ np.linalg.lstsq(design, ry, rcond=None)[0]
    r = np.corrcoef(ex, ey)[0, 1]
    df = len(x) - 2 - (design.shape[1] - 1)
    t = r * np.sqrt(df / (1 - r**2))
    return r, 2 * stats.t.sf(abs(t), df)


def test_partial_matches_a_hand_computation():
    rng = np.random.default_rng(4)
    n = 50
    labels = np.array(["neg", "pos", "neutral"])[rng.integers(0, 3, n)]
    length = rng.integers(5, 30, n).astype(float)
    x = np.c_[length + rng.normal(size=n) * 3, rng.normal(size=n), rng.integers(0, 3, n)]
    y = np.c_[length * 0.1 + (labels == "pos") + rng.normal(size=n), rng.integers(0, 5, n)]
    rho, pvalue, count = partial_spearman(x, y, length, indicators(labels))
    for c in range(x.shape[1]):
        for q in range(y.shape[1]):
            ref_r, ref_p = hand_partial(x[:, c], y[:, q], length, labels)
            assert rho[c, q] == pytest.approx(ref_r, abs=1e-10)
            assert pvalue[c, q] == pytest.approx(ref_p, rel=1e-8)
    assert (count == n).all()
    # Length drives x[:, 0] and y[:, 0], so holding it fixed moves their rho.
    assert abs(rho[0, 0]) < abs(spearman(x[:, 0], y[:, 0])[0]) - 0.2


def test_partial_without_controls_is_spearman_and_drops_missing_rows():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(30, 1))
    x[4, 1] = np.nan
    rho, pvalue, count = partial_spearman(x, y)
    for c in range(2):
        r, p, n = spearman(x[:, c], y[:, 0])
        assert rho[c, 0] == pytest.approx(r, abs=1e-12) and pvalue[c, 0] == pytest.approx(p, rel=1e-9)
        assert count[c, 0] == n


def test_partial_is_nan_for_a_covariate_itself_or_a_constant():
    rng = np.random.default_rng(6)
    length = rng.integers(5, 30, 40).astype(float)
    x = np.c_[length * 2, np.ones(40)]
    y = rng.normal(size=(40, 1)) + length[:, None]
    rho, pvalue, _ = partial_spearman(x, y, length)
    assert np.isnan(rho).all() and np.isnan(pvalue).all()


def rho_rows_table():
    table = pl.DataFrame(
        {
            "model": ["m"] * 5 + ["m"] * 2,
            "task": ["a"] * 5 + ["b"] * 2,
            "feature": ["f", "g", "f", "g", "n_tokens", "f", "g"],
            "layer": [0, 0, 1, 1, None, 0, 0],
            "quality": ["accuracy"] * 7,
            "mask": ["causal"] * 4 + [None] + ["causal"] * 2,
            "site": ["mlp_out"] * 4 + [None] + ["mlp_out"] * 2,
            "lens": ["moments"] * 4 + ["controls"] + ["moments"] * 2,
            "rho": [0.2, -0.5, 0.1, float("nan"), 0.6, 0.3, -0.1],
            "n": [40] * 7,
            "ci_low": [0.0, -0.7, -0.1, float("nan"), 0.4, 0.1, -0.3],
            "ci_high": [0.4, -0.36, 0.3, float("nan"), 0.8, 0.5, 0.1],
            "pvalue": [0.04, 0.001, 0.3, float("nan"), 0.0001, 0.02, 0.5],
            "partial_rho": [0.25, -0.1, 0.05, float("nan"), float("nan"), -0.4, 0.0],
            "partial_pvalue": [0.03, 0.4, 0.7, float("nan"), float("nan"), 0.01, 0.9],
        }
    ).pipe(with_adjusted).pipe(with_adjusted, "partial_pvalue", "partial_padj")
    return table.with_columns(pl.lit(True).alias("in_family"), pl.Series("p_fwer", [0.5, 0.01, 0.9, None, 0.001, 0.6, 0.9]),
                              pl.Series("bounded", [False, False, True, None, False, False, True]))


def test_headline_picks_the_largest_activation_rho_beside_the_best_control():
    reliability = pl.DataFrame({"model": ["m", "m"], "task": ["a", "b"], "metric": ["accuracy"] * 2,
                                "reliability": [0.64, 0.5], "degenerate": [None, None]})
    nulls = {("m", "a"): np.linspace(0.1, 0.45, 100), ("m", "b"): np.linspace(0.1, 0.45, 100)}
    top = headline(rho_rows_table(), nulls, reliability, {("m", "a"): 40, ("m", "b"): 40}, bound=0.33, alpha=0.05)
    a = top.filter(pl.col("task") == "a").row(0, named=True)
    # The control's 0.6 is not the activations' headline; it stands beside it.
    assert (a["rho"], a["feature"], a["layer"], a["lens"]) == (-0.5, "g", 0, "moments")
    assert (a["best_control"], a["best_control_rho"]) == ("n_tokens", 0.6)
    assert (a["tests"], a["defined"]) == (5, 4)
    assert a["p_max"] == pytest.approx(1 / 101) and a["verdict"] == "signal"
    assert a["null_max_q95"] == pytest.approx(np.quantile(np.linspace(0.1, 0.45, 100), 0.95))
    assert a["share_bounded"] == pytest.approx(1 / 3)
    assert a["noise_ceiling"] == pytest.approx(0.8) and a["rho_disattenuated"] == pytest.approx(-0.5 / 0.8)
    assert a["partial_rho"] == 0.25 and a["partial_feature"] == "f"
    b = top.filter(pl.col("task") == "b").row(0, named=True)
    # 0.3 is below most of the chance maxima: no signal, and at n = 40 the run could not have seen 0.33.
    assert b["rho"] == 0.3 and b["p_max"] > 0.05 and b["detectable_rho"] > 0.33 and b["verdict"] == "underpowered"
    assert b["best_control"] is None and b["share_bounded"] == 0.5
