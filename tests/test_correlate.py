import numpy as np
import polars as pl
import pytest
from scipy import stats

from demoscope.stats.correlate import spearman, spearman_columns, spearman_pvalue
from demoscope.stats.rhotable import rho_rows, rho_table


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


def tied_table(rng, n=40):
    """Columns with heavy ties, a continuous one, a constant one, and missing values on both sides."""
    x = rng.integers(0, 5, (n, 6)).astype(float)
    x[:, 4] = rng.normal(size=n)
    x[:, 5] = 2.0
    x[3, 1], x[8, 2] = np.nan, np.inf
    y = np.c_[rng.integers(0, 4, n), rng.normal(size=n)].astype(float)
    y[5, 1] = np.nan
    return x, y


def scipy_rho(x, y):
    keep = np.isfinite(x) & np.isfinite(y)
    if np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return np.nan, keep.sum()
    return stats.spearmanr(x[keep], y[keep]).statistic, keep.sum()


def test_columns_match_scipy_with_ties_and_missing_values():
    x, y = tied_table(np.random.default_rng(1))
    rho, n = spearman_columns(x, y)
    pvalue = spearman_pvalue(rho[0], n)
    for c in range(x.shape[1]):
        for q in range(y.shape[1]):
            ref, kept = scipy_rho(x[:, c], y[:, q])
            assert n[c, q] == kept
            if np.isnan(ref):
                assert np.isnan(rho[0, c, q]) and np.isnan(pvalue[c, q])
            else:
                keep = np.isfinite(x[:, c]) & np.isfinite(y[:, q])
                assert rho[0, c, q] == pytest.approx(ref, abs=1e-12)
                assert pvalue[c, q] == pytest.approx(stats.spearmanr(x[keep, c], y[keep, q]).pvalue, rel=1e-9)


def test_row_counts_equal_ranking_the_resampled_rows_afresh():
    rng = np.random.default_rng(2)
    x, y = tied_table(rng)
    draws = rng.integers(0, len(x), (6, len(x)))
    counts = np.stack([np.bincount(d, minlength=len(x)) for d in draws])
    rho, _ = spearman_columns(x, y, counts)
    for b, d in enumerate(draws):
        for c in range(x.shape[1]):
            for q in range(y.shape[1]):
                ref, _ = scipy_rho(x[d, c], y[d, q])
                assert rho[b, c, q] == pytest.approx(ref, abs=1e-12, nan_ok=True)


def test_rho_rows_per_feature_layer_metric():
    features = pl.DataFrame({"cand_id": [0, 1, 2, 3] * 2, "layer": [0] * 4 + [1] * 4,
                             "f": [1.0, 2.0, 3.0, 4.0, 4.0, 3.0, 2.0, 1.0]})
    quality = pl.DataFrame({"cand_id": [0, 1, 2, 3], "accuracy": [0.1, 0.2, 0.3, 0.4], "gold_logprob": [1.0] * 4,
                            "n_tokens": [5, 3, 8, 6], "label": ["a", "b", "a", "b"]})
    table = rho_rows(features, quality, ["f"], ["accuracy", "gold_logprob"], 50, np.random.default_rng(0), True)
    rho = {(r["layer"], r["quality"]): r["rho"] for r in table.iter_rows(named=True)}
    assert rho[(0, "accuracy")] == pytest.approx(1.0) and rho[(1, "accuracy")] == pytest.approx(-1.0)
    assert np.isnan(rho[(0, "gold_logprob")])
    assert set(table["controls"]) == {"n_tokens,label"}


def test_rho_rows_refuses_missing_candidate_rows():
    features = pl.DataFrame({"cand_id": [0, 1, 2], "layer": [0, 0, 0], "f": [1.0, 2.0, 3.0]})
    quality = pl.DataFrame({"cand_id": [0, 1, 2, 3], "accuracy": [0.1, 0.2, 0.3, 0.4], "n_tokens": [1, 2, 3, 4]})
    with pytest.raises(ValueError, match="lacks"):
        rho_rows(features, quality, ["f"], ["accuracy"], 10, np.random.default_rng(0), False)


def test_rho_table_puts_each_statistic_on_its_feature_layer_and_metric():
    """feature_matrix lays columns out layer-major: column c is feature c % F at layer c // F."""
    names, layers, metrics = ["f", "g", "h"], [2, 5], ["accuracy", "gold_logprob"]
    code = np.array([[100 * c + m for m in range(2)] for c in range(6)], dtype=float)
    table = rho_table(names, layers, metrics, {"rho": code, "controls": "n_tokens"})
    assert table.columns == ["feature", "layer", "quality", "rho", "controls"]
    assert table["layer"].dtype == pl.Int64 and len(table) == 12
    for row in table.iter_rows(named=True):
        column = layers.index(row["layer"]) * len(names) + names.index(row["feature"])
        assert row["rho"] == 100 * column + metrics.index(row["quality"])
    assert table.select("quality", "feature", "layer").rows() == sorted(table.select("quality", "feature", "layer").rows())
    with pytest.raises(ValueError, match="column rho has shape"):
        rho_table(names, layers, metrics, {"rho": code[:, :1]})


def test_both_sides_build_their_rows_with_rho_table():
    """The quality side (rho_rows) and the task side (task_rho_rows) key the same features the
    same way, in the same order, only the metric column's name differs."""
    from demoscope.stats.taskcorr import METRICS, random_sets, set_table, task_rho_rows

    rng = np.random.default_rng(3)
    n = 12
    features = pl.DataFrame({"cand_id": np.repeat(np.arange(n), 2), "layer": np.tile([0, 3], n),
                             "f": rng.normal(size=2 * n), "g": rng.normal(size=2 * n)})
    quality = pl.DataFrame({"cand_id": np.arange(n), "accuracy": rng.random(n), "gold_logprob": rng.normal(size=n),
                            "n_tokens": rng.integers(3, 9, n)})
    quality_side = rho_rows(features, quality, ["f", "g"], list(METRICS), 20, np.random.default_rng(0), False)
    sets = set_table(random_sets(np.arange(n), 3, 8, 0), rng.random((8, 5)) > 0.5, rng.normal(size=(8, 5)))
    task_side = task_rho_rows(features, sets, ["f", "g"])
    keys = ["feature", "layer"]
    assert task_side.select(*keys, quality="metric").rows() == quality_side.select(*keys, "quality").rows()
    assert task_side.columns[:3] == ["feature", "layer", "metric"]


def test_skipped_section_counts_rows_per_split():
    from demoscope.report.summary import skipped_section

    none = pl.DataFrame(schema={"split": pl.String, "location": pl.String, "reason": pl.String})
    some = pl.DataFrame({"split": ["train", "train", "dev"], "location": ["a:1", "a:4", "b:2"], "reason": ["x"] * 3})
    heading, text, table = skipped_section({("m", "sst2"): some, ("m", "arc"): none})
    assert heading == "Skipped records" and text.startswith("3 records were left out")
    assert table.select("task", "split", "skipped").rows() == [("sst2", "train", 2), ("sst2", "dev", 1)]
    assert skipped_section({("m", "arc"): none})[2] is None
    untyped = pl.DataFrame([], schema=["split", "location", "reason"], orient="row")  # all-Null columns
    assert skipped_section({("m", "arc"): untyped})[2] is None
