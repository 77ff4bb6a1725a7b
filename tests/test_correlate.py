import numpy as np
import polars as pl
import pytest
from scipy import stats

from demoscope.correlate import correlate, spearman


def test_spearman_matches_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), rng.normal(size=30)
    rho, p, n = spearman(x, y)
    ref = stats.spearmanr(x, y)
    assert (rho, p, n) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue), 30)


def test_constant_side_is_nan_never_zero():
    rho, p, n = spearman(np.arange(5.0), np.ones(5))
    assert np.isnan(rho) and np.isnan(p) and n == 5


def test_nan_features_drop_only_their_pairs():
    rho, _, n = spearman(np.array([1, 2, np.nan, 4, 5.0]), np.array([2, 4, 6, 8, 10.0]))
    assert rho == pytest.approx(1.0) and n == 4


def test_correlate_rows_per_feature_layer_metric():
    features = pl.DataFrame({"cand_id": [0, 1, 2, 3] * 2, "layer": [0] * 4 + [1] * 4,
                             "f": [1.0, 2.0, 3.0, 4.0, 4.0, 3.0, 2.0, 1.0]})
    quality = pl.DataFrame({"cand_id": [0, 1, 2, 3], "accuracy": [0.1, 0.2, 0.3, 0.4], "gold_logprob": [1.0] * 4})
    table = correlate(features, quality, ["f"], ["accuracy", "gold_logprob"])
    rho = {(r["layer"], r["quality"]): r["rho"] for r in table.iter_rows(named=True)}
    assert rho[(0, "accuracy")] == pytest.approx(1.0) and rho[(1, "accuracy")] == pytest.approx(-1.0)
    assert np.isnan(rho[(0, "gold_logprob")])
