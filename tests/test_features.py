import numpy as np
import pytest
from scipy import stats

from demoscope.lenses.features import FEATURES, candidate_features, compute_features
from demoscope.lenses.massive import massive_features
from demoscope.lenses.moments import moments, token_moments


def test_moments_match_scipy():
    x = np.random.default_rng(0).gamma(2.0, size=(7, 16))
    got = moments(x)
    flat = x.ravel()
    assert got["mean"] == pytest.approx(flat.mean())
    assert got["variance"] == pytest.approx(np.var(flat))
    assert got["skewness"] == pytest.approx(stats.skew(flat))
    assert got["kurtosis"] == pytest.approx(stats.kurtosis(flat))
    last = token_moments(x)
    assert last["last_kurtosis"] == pytest.approx(stats.kurtosis(x[-1]))
    assert last["last_mean"] == pytest.approx(x[-1].mean())


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(1).standard_t(3, size=(40, 576)).astype(np.float32),  # a store's dtype
        np.random.default_rng(2).normal(1e4, 1e-9, size=(5, 8)),  # near-constant: scipy says NaN
        np.concatenate([np.zeros((9, 64)), np.full((1, 64), 300.0)]),  # one massive token
    ],
)
def test_moments_agree_with_scipy_to_the_last_bits(values):
    # moments() reimplements scipy's formulas to avoid its per-call overhead: same numbers.
    flat = np.asarray(values, dtype=np.float64).ravel()
    got = moments(values)
    for name, want in (("skewness", stats.skew(flat)), ("kurtosis", stats.kurtosis(flat))):
        assert (np.isnan(got[name]) and np.isnan(want)) or got[name] == pytest.approx(want, rel=1e-12, abs=0)
    assert got["variance"] == pytest.approx(np.var(flat), rel=1e-12, abs=0)


def test_constant_input_gives_nan_shape_moments():
    got = moments(np.ones((3, 4)))
    assert got["variance"] == 0 and np.isnan(got["skewness"]) and np.isnan(got["kurtosis"])


def test_massive_activations_are_found_where_planted():
    x = np.random.default_rng(1).normal(0, 0.05, size=(6, 64))
    x[0, 7] = -2000.0  # first token, fixed dimension: the pattern Sun et al. describe
    x[3, 7] = 900.0
    x[2, 11] = 50.0  # large, but under the absolute threshold of 100
    got = massive_features(x)
    median = np.median(np.abs(x))
    assert got["top1"] == 2000.0 and got["top2"] == 900.0 and got["top3"] == 50.0
    assert got["median_abs"] == pytest.approx(median)
    assert got["top1_ratio"] == pytest.approx(2000.0 / median)
    assert got["massive_count"] == 2 and got["massive_dims"] == [7] and got["top1_dim"] == 7


def test_ratio_rule_rejects_large_but_common_values():
    x = np.full((4, 8), 150.0)
    x[0, 0] = 300.0
    assert massive_features(x)["massive_count"] == 0  # over 100, but not 1000x the median


def test_streamed_features_equal_in_memory(tmp_path):
    from demoscope.activations import store

    rng = np.random.default_rng(2)
    lengths = [3, 9, 1, 5, 12, 4]
    acts = rng.normal(size=(2, sum(lengths), 8)).astype("float32")
    acts[1, 0, 3] = 5000.0
    root, _ = store.create(tmp_path / "s.zarr", lengths, 2, 8, "float32", 4, {})
    root["activations"][:] = acts
    store.mark_progress(root, len(lengths))
    store.finalize(tmp_path / "s.zarr")
    streamed = compute_features(store.open_store(tmp_path / "s.zarr"), block_tokens=7)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for row in streamed.iter_rows(named=True):
        ref = candidate_features(acts[row["layer"], offsets[row["cand_id"]] : offsets[row["cand_id"] + 1]], 100, 1000)
        for name in FEATURES:
            assert row[name] == pytest.approx(ref[name], nan_ok=True), name
    assert streamed.height == len(lengths) * 2


def test_query_segments_are_averaged_per_candidate(tmp_path):
    from demoscope.activations import store

    rng = np.random.default_rng(3)
    lengths = [2, 3, 4, 2]  # two candidates x two query segments
    acts = rng.normal(size=(1, sum(lengths), 6)).astype("float32")
    root, _ = store.create(tmp_path / "q.zarr", lengths, 1, 6, "float32", 4, {"segments_per_candidate": 2})
    root["activations"][:] = acts
    store.mark_progress(root, len(lengths))
    store.finalize(tmp_path / "q.zarr")
    got = compute_features(store.open_store(tmp_path / "q.zarr"))
    assert got["cand_id"].to_list() == [0, 1]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    segs = [candidate_features(acts[0, offsets[i] : offsets[i + 1]], 100, 1000) for i in range(4)]
    for cand in (0, 1):
        row = got.row(cand, named=True)
        for name in ("n_tokens", "kurtosis", "last_mean", "top1"):
            assert row[name] == pytest.approx((segs[2 * cand][name] + segs[2 * cand + 1][name]) / 2)


def test_empty_segments_give_nan_features_and_the_sink_is_left_out_of_the_moments_only(tmp_path):
    from demoscope.activations import store
    from demoscope.lenses.massive import MASSIVE
    from demoscope.lenses.moments import MOMENTS

    rng = np.random.default_rng(3)
    lengths = [4, 0, 1, 6]
    acts = rng.normal(size=(1, sum(lengths), 8)).astype("float32")
    acts[0, 0, 2] = 3000.0  # a sink on candidate 0's first token
    root, _ = store.create(tmp_path / "e.zarr", lengths, 1, 8, "float32", 4, {})
    root["activations"][:] = acts
    store.mark_progress(root, len(lengths))
    store.finalize(tmp_path / "e.zarr")
    data = store.open_store(tmp_path / "e.zarr")
    kept = compute_features(data, skip_first_token=False).sort("cand_id")
    skipped = compute_features(data, skip_first_token=True).sort("cand_id")
    moments_ = list(MOMENTS) + [f"last_{m}" for m in MOMENTS]
    empty = skipped.row(1, named=True)
    assert empty["n_tokens"] == 0 and all(np.isnan(empty[name]) for name in moments_ + list(MASSIVE))
    one = skipped.row(2, named=True)  # one token, skipped: no moment, but its massive features stand
    assert all(np.isnan(one[name]) for name in moments_) and not np.isnan(one["top1"])
    first = skipped.row(0, named=True)
    assert first["mean"] == pytest.approx(acts[0, 1:4].astype(float).mean(), rel=1e-6)
    assert first["top1"] == 3000.0 and first["top1_dim"] == 2  # the massive lens keeps the sink
    assert kept.row(0, named=True)["mean"] == pytest.approx(acts[0, 0:4].astype(float).mean(), rel=1e-6)
    assert kept.row(2, named=True)["n_tokens"] == 1 and not np.isnan(kept.row(2, named=True)["mean"])
