"""Each figure function draws from a synthetic table and writes every format it is given."""

import numpy as np
import polars as pl
import pytest

from matplotlib.colors import same_color

from demoscope.report import figures
from demoscope.stats.fdr import with_adjusted

PNG = b"\x89PNG\r\n\x1a\n"


def outputs(tmp_path, name):
    return [tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"]


def assert_written(paths):
    png, pdf = paths
    assert png.read_bytes()[:8] == PNG and pdf.read_bytes()[:5] == b"%PDF-"


def spearman_rows(rng):
    rows = [
        {"mask": mask, "site": site, "feature": feature, "layer": layer, "quality": "accuracy",
         "rho": float(rng.uniform(-0.6, 0.6)), "pvalue": float(rng.uniform(0, 0.2)),
         "p_fwer": float(rng.uniform(0, 0.5))}
        for mask, site in (("causal", "mlp_out"), ("causal", "resid"), ("query", "mlp_out"))
        for feature in ("mean", "top1", "variance")
        for layer in range(4)
    ]
    rows[0]["rho"] = float("nan")
    return with_adjusted(pl.DataFrame(rows))


def test_rho_figures(tmp_path):
    table = spearman_rows(np.random.default_rng(0))
    figures.rho_heatmap(table, "accuracy", "m / t", outputs(tmp_path, "heatmap"), null_q95=0.45)
    figures.rho_by_layer(table, "accuracy", 0.33, 0.05, "m / t", outputs(tmp_path, "by_layer"), null_q95=0.45)
    assert_written(outputs(tmp_path, "heatmap"))
    assert_written(outputs(tmp_path, "by_layer"))


def test_sae_lens_figure(tmp_path):
    from demoscope.lenses.registry import lens_of

    rng = np.random.default_rng(2)
    raw = spearman_rows(rng)
    sae = pl.DataFrame(
        [{"mask": "causal", "site": "mlp_out", "feature": feature, "layer": layer, "quality": "accuracy",
          "rho": float(rng.uniform(-0.6, 0.6)), "pvalue": 0.5, "padj": 0.5}
         for feature in ("sae_nmse", "sae_l0") for layer in (1, 3)]
    )
    table = pl.concat([raw, sae], how="diagonal_relaxed")
    table = table.with_columns(pl.col("feature").map_elements(lens_of, return_dtype=pl.String).alias("lens"))
    figures.sae_lens(table, "accuracy", 0.33, "m / t", outputs(tmp_path, "sae"))
    assert_written(outputs(tmp_path, "sae"))
    # Without SAE rows the figure says the lens is off rather than failing.
    figures.sae_lens(table.filter(pl.col("lens") != "sae"), "accuracy", 0.33, "m / t", outputs(tmp_path, "off"))
    assert_written(outputs(tmp_path, "off"))


def test_strongest_scatter(tmp_path):
    rng = np.random.default_rng(1)
    row = {"feature": "top1", "layer": 3, "mask": "causal", "site": "resid", "quality": "accuracy",
           "rho": 0.41, "ci_low": 0.2, "ci_high": 0.6, "padj": 0.003, "p_max": 0.21, "tests": 840,
           "null_max_q95": 0.48, "verdict": "underpowered"}
    figures.strongest_scatter(rng.lognormal(5, 2, 40), rng.uniform(size=40), ["a", "b"] * 20, row, "m / t",
                              outputs(tmp_path, "strongest"))
    assert_written(outputs(tmp_path, "strongest"))


def test_massive_and_quality_figures(tmp_path):
    rng = np.random.default_rng(2)
    features = pl.DataFrame(
        {"cand_id": np.repeat(np.arange(10), 5), "layer": np.tile(np.arange(5), 10),
         "top1": rng.lognormal(6, 1, 50), "top2": rng.lognormal(5, 1, 50), "top3": rng.lognormal(4, 1, 50),
         "median_abs": rng.lognormal(-1, 0.2, 50)}
    )
    figures.massive_by_layer(features, 100.0, "m / t", outputs(tmp_path, "massive"))
    quality = pl.DataFrame({"label": ["neg", "pos"] * 10, "accuracy": rng.uniform(size=20),
                            "gold_logprob": -rng.uniform(size=20)})
    figures.quality_by_label(quality, ["accuracy", "gold_logprob"], "m / t", outputs(tmp_path, "quality"))
    assert_written(outputs(tmp_path, "massive"))
    assert_written(outputs(tmp_path, "quality"))


def test_strategy_accuracy_bars(tmp_path):
    """The selection stage's bar chart, from a table with the strategies table's columns."""
    table = pl.DataFrame(
        {"model": ["m"] * 6, "task": ["a"] * 3 + ["b"] * 3,
         "strategy": ["random", "activation", "similarity"] * 2,
         "mean_accuracy": [0.6, 0.62, 0.7, 0.4, 0.41, 0.45],
         "ci_low": [0.55, 0.57, 0.66, 0.35, 0.36, 0.4], "ci_high": [0.65, 0.67, 0.74, 0.45, 0.46, 0.5]}
    )
    assert tuple(table.columns) == figures.STRATEGY_COLUMNS
    figures.strategy_accuracy_bars(table, "selection", outputs(tmp_path, "strategies"))
    assert_written(outputs(tmp_path, "strategies"))
    # The quality oracle is drawn as a reference (hatched); an interval may touch the mean.
    with_reference = table.with_columns(
        pl.Series("reference", [False, False, True] * 2), pl.col("mean_accuracy").alias("ci_high")
    )
    figures.strategy_accuracy_bars(with_reference, "selection", outputs(tmp_path, "reference"))
    assert_written(outputs(tmp_path, "reference"))
    with pytest.raises(ValueError, match="ci_high"):
        figures.strategy_accuracy_bars(table.drop("ci_high"), "selection", outputs(tmp_path, "broken"))


def test_strategy_bars_mark_each_verdict(tmp_path, monkeypatch):
    """With the paired comparison's verdicts, each compared bar carries its mark, distinguishable
    bars another colour, and random's mean a dashed line."""
    from demoscope.stats import paired

    assert figures.DISTINGUISHABLE == paired.DISTINGUISHABLE
    assert set(figures.VERDICT_MARKS) == {paired.DISTINGUISHABLE, paired.NOT_DISTINGUISHABLE, paired.UNDERPOWERED}
    table = pl.DataFrame(
        {"model": ["m"] * 4, "task": ["a"] * 4, "strategy": ["random", "similarity", "votek", "diversity"],
         "mean_accuracy": [0.6, 0.75, 0.62, 0.5], "ci_low": [0.55, 0.7, 0.57, 0.45], "ci_high": [0.65, 0.8, 0.67, 0.55],
         "verdict": ["baseline", paired.DISTINGUISHABLE, paired.NOT_DISTINGUISHABLE, paired.UNDERPOWERED]}
    )
    drawn = {}
    real_save = figures.save

    def keep(fig, paths):
        ax = fig.axes[0]
        drawn["marks"] = [t.get_text() for t in ax.texts]
        drawn["colours"] = [tuple(round(c, 3) for c in bar.get_facecolor()[:3]) for bar in ax.patches]
        drawn["lines"] = [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--"]
        real_save(fig, paths)

    monkeypatch.setattr(figures, "save", keep)
    figures.strategy_accuracy_bars(table, "selection", outputs(tmp_path, "verdicts"))
    assert drawn["marks"] == ["*", "ns", "?"] and drawn["lines"] == [0.6]
    assert drawn["colours"][1] != drawn["colours"][2] == drawn["colours"][0]
    assert_written(outputs(tmp_path, "verdicts"))


def test_figures_of_a_task_without_labels(tmp_path):
    """Generation tasks (GSM8K) have no demonstration label: one group, named so, and no warning."""
    import warnings

    rng = np.random.default_rng(3)
    row = {"feature": "mean", "layer": 1, "mask": "causal", "site": "mlp_out", "quality": "accuracy",
           "rho": -0.2, "ci_low": -0.5, "ci_high": 0.1, "padj": 0.4, "p_max": 0.9, "tests": 90,
           "null_max_q95": 0.7, "verdict": "underpowered"}
    quality = pl.DataFrame({"label": [""] * 12, "accuracy": rng.uniform(size=12), "gold_logprob": -rng.uniform(size=12)})
    assert list(figures.shown_labels(quality["label"].to_numpy())) == [figures.NO_LABEL] * 12
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figures.strongest_scatter(rng.normal(size=12), quality["accuracy"], quality["label"], row, "m / gsm8k",
                                  outputs(tmp_path, "strongest"))
        figures.quality_by_label(quality, ["accuracy", "gold_logprob"], "m / gsm8k", outputs(tmp_path, "quality"))
    assert_written(outputs(tmp_path, "strongest"))
    assert_written(outputs(tmp_path, "quality"))


def test_reliability_figure(tmp_path):
    summary = pl.DataFrame({"metric": ["accuracy", "gold_logprob"], "queries": [8, 8], "reliability": [0.3, 0.5]})
    curve = pl.DataFrame({"metric": ["accuracy"] * 3 + ["gold_logprob"] * 3, "queries": [2, 4, 8] * 2,
                          "reliability": [0.1, 0.2, 0.3, 0.2, 0.35, 0.5], "reliability_low": [-0.2, 0.0, 0.1] * 2,
                          "reliability_high": [0.4, 0.5, 0.6] * 2})
    figures.reliability_by_queries(summary, curve, "m / t", outputs(tmp_path, "reliability"))
    assert_written(outputs(tmp_path, "reliability"))


# What is drawn, read back from the matplotlib objects: every figure function hands its figure to
# `figures.save`, which the fixture wraps so that the files are still written and the figure kept.


@pytest.fixture
def drawn(monkeypatch):
    """The figures passed to `figures.save` during a test, in order."""
    kept = []
    real_save = figures.save

    def keep(fig, paths):
        kept.append(fig)
        real_save(fig, paths)

    monkeypatch.setattr(figures, "save", keep)
    return kept


def panels(fig):
    """The visible axes that draw data (a colourbar is not a panel)."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def by_title(fig) -> dict:
    return {ax.get_title(): ax for ax in panels(fig)}


def store(table, mask, site, feature):
    return table.filter((pl.col("mask") == mask) & (pl.col("site") == site) & (pl.col("feature") == feature)).sort("layer")


def test_rho_heatmap_draws_abs_rho_per_store(tmp_path, drawn):
    table = spearman_rows(np.random.default_rng(0))
    figures.rho_heatmap(table, "accuracy", "m / t", outputs(tmp_path, "heatmap"))
    (fig,) = drawn
    axes = by_title(fig)
    assert set(axes) == {"causal / mlp_out", "causal / resid", "query / mlp_out"}
    assert fig._suptitle.get_text() == "m / t"
    (colorbar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert colorbar.get_ylabel() == "|Spearman rho| with accuracy"
    for (mask, site), ax in zip([("causal", "mlp_out"), ("causal", "resid"), ("query", "mlp_out")],
                                [axes["causal / mlp_out"], axes["causal / resid"], axes["query / mlp_out"]]):
        (image,) = ax.get_images()
        grid = image.get_array()
        assert grid.shape == (4, 3)  # layers x features
        assert [t.get_text() for t in ax.get_xticklabels()] == ["mean", "top1", "variance"]
        assert ax.get_ylabel() == "layer"
        for column, feature in enumerate(["mean", "top1", "variance"]):
            rho = store(table, mask, site, feature)["rho"].to_numpy()
            shown = np.ma.filled(grid[:, column].astype(float), np.nan)
            np.testing.assert_allclose(shown, np.abs(rho))
    # The one NaN rho (causal / mlp_out, mean, layer 0) is masked, not drawn as zero.
    assert axes["causal / mlp_out"].get_images()[0].get_array().mask[0, 0]


def test_rho_by_layer_draws_a_line_per_feature_the_bound_and_the_hits(tmp_path, drawn):
    table = spearman_rows(np.random.default_rng(0))
    alpha = 0.05
    figures.rho_by_layer(table, "accuracy", 0.33, alpha, "m / t", outputs(tmp_path, "by_layer"), null_q95=0.45)
    (fig,) = drawn
    axes = by_title(fig)
    assert len(axes) == 3
    assert "bound 0.33" in fig._suptitle.get_text() and "chance max 0.45" in fig._suptitle.get_text()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["mean", "top1", "variance", "study bound 0.33",
                                                                  "chance (null 95% of max)"]
    for title, ax in axes.items():
        mask, site = title.split(" / ")
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("layer", "|rho| with accuracy")
        lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
        assert set(lines) == {"mean", "top1", "variance", "study bound 0.33"}
        hits = [line for line in ax.get_lines() if line.get_marker() == "o" and line.get_linestyle() == "None"]
        assert len(hits) == 3
        for feature, hit in zip(["mean", "top1", "variance"], hits):
            rows = store(table, mask, site, feature)
            np.testing.assert_array_equal(lines[feature].get_xdata(), rows["layer"].to_numpy())
            np.testing.assert_allclose(lines[feature].get_ydata(), np.abs(rows["rho"].to_numpy()))
            significant = rows.filter(pl.col("p_fwer") < alpha)  # family-wise, not BH
            np.testing.assert_array_equal(hit.get_xdata(), significant["layer"].to_numpy())
            np.testing.assert_array_equal(hit.get_color(), lines[feature].get_color())
        bounds = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(bounds) == 1 and list(bounds[0].get_ydata()) == [0.33, 0.33]
        # The chance band: a red span from 0 to the null's 95th percentile, and its edge.
        (band,) = [patch for patch in ax.patches if patch.get_label() == "chance (null 95% of max)"]
        extent = band.get_path().get_extents(band.get_patch_transform())
        assert (extent.y0, extent.y1) == pytest.approx((0, 0.45))
        red = [list(line.get_ydata()) for line in ax.get_lines() if same_color(line.get_color(), "red")]
        assert red == [[0.45, 0.45]]
    # The test has some hits and some misses, so the filled markers are a real selection.
    assert 0 < (table["p_fwer"] < alpha).sum() < table.height


def test_quality_by_label_draws_a_box_and_every_candidate_per_label(tmp_path, drawn):
    rng = np.random.default_rng(2)
    quality = pl.DataFrame({"label": ["neg", "pos"] * 10, "accuracy": rng.uniform(size=20),
                            "gold_logprob": -rng.uniform(size=20)})
    figures.quality_by_label(quality, ["accuracy", "gold_logprob"], "m / t", outputs(tmp_path, "quality"))
    (fig,) = drawn
    axes = panels(fig)
    assert [ax.get_ylabel() for ax in axes] == ["accuracy", "gold_logprob"]
    assert "(20 candidates)" in fig._suptitle.get_text()
    for ax, metric in zip(axes, ["accuracy", "gold_logprob"]):
        assert ax.get_xlabel() == "demonstration label"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["neg", "pos"]
        dots = ax.collections
        assert len(dots) == 2
        for position, (label, points) in enumerate(zip(["neg", "pos"], dots), start=1):
            offsets = points.get_offsets()
            expected = quality.filter(pl.col("label") == label)[metric].to_numpy()
            np.testing.assert_allclose(offsets[:, 1], expected)
            assert np.all(np.abs(offsets[:, 0] - position) <= 0.15)


def test_massive_by_layer_draws_medians_bands_and_the_threshold(tmp_path, drawn):
    rng = np.random.default_rng(2)
    features = pl.DataFrame(
        {"cand_id": np.repeat(np.arange(10), 5), "layer": np.tile(np.arange(5), 10),
         "top1": rng.lognormal(6, 1, 50), "top2": rng.lognormal(5, 1, 50), "top3": rng.lognormal(4, 1, 50),
         "median_abs": rng.lognormal(-1, 0.2, 50)}
    )
    figures.massive_by_layer(features, 100.0, "m / t", outputs(tmp_path, "massive"))
    (fig,) = drawn
    (ax,) = panels(fig)
    assert ax.get_yscale() == "log" and (ax.get_xlabel(), ax.get_ylabel()) == ("layer", "|activation|")
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"top 1", "top 2", "top 3", "median", "massive threshold 100"}
    assert list(lines["massive threshold 100"].get_ydata()) == [100.0, 100.0]
    for name, column in (("top 1", "top1"), ("top 2", "top2"), ("top 3", "top3"), ("median", "median_abs")):
        medians = [np.median(features.filter(pl.col("layer") == layer)[column].to_numpy()) for layer in range(5)]
        np.testing.assert_array_equal(lines[name].get_xdata(), np.arange(5))
        np.testing.assert_allclose(lines[name].get_ydata(), medians)
    assert len(ax.collections) == 4  # one 10th-90th percentile band per line
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "top 1", "top 2", "top 3", "median", "massive threshold 100"]


def strategy_table():
    return pl.DataFrame(
        {"model": ["m"] * 6, "task": ["a"] * 3 + ["b"] * 3,
         "strategy": ["random", "activation", "similarity"] * 2,
         "mean_accuracy": [0.6, 0.62, 0.7, 0.4, 0.41, 0.45],
         "ci_low": [0.55, 0.57, 0.66, 0.35, 0.36, 0.4], "ci_high": [0.65, 0.67, 0.74, 0.45, 0.46, 0.5]}
    )


def test_strategy_accuracy_bars_draws_each_mean_and_interval(tmp_path, drawn):
    table = strategy_table().with_columns(pl.Series("reference", [False, False, True] * 2))
    figures.strategy_accuracy_bars(table, "selection", outputs(tmp_path, "strategies"))
    figures.strategy_accuracy_bars(table.filter(pl.col("task") == "a"), "m / a", outputs(tmp_path, "one"))
    fig, single = drawn
    axes = panels(fig)
    assert [ax.get_title() for ax in axes] == ["m / a", "m / b"]
    for ax, task in zip(axes, ["a", "b"]):
        part = table.filter(pl.col("task") == task)
        (bars,) = [c for c in ax.containers if hasattr(c, "patches")]
        np.testing.assert_allclose([bar.get_height() for bar in bars], part["mean_accuracy"].to_numpy())
        assert [t.get_text() for t in ax.get_xticklabels()] == ["random", "activation", "similarity (reference)"]
        assert [bar.get_hatch() for bar in bars] == [None, None, "//"]
        (whiskers,) = bars.errorbar.lines[2]
        ends = np.array([[segment[0][1], segment[1][1]] for segment in whiskers.get_segments()])
        np.testing.assert_allclose(ends, part.select("ci_low", "ci_high").to_numpy())
        assert ax.get_ylabel() == "test accuracy" and ax.get_ylim() == (0, 1)
    # One panel: the suptitle names it, the panel has no title of its own.
    (ax,) = panels(single)
    assert ax.get_title() == "" and single._suptitle.get_text() == "m / a"


def test_sae_lens_draws_sae_features_against_the_best_raw_features(tmp_path, drawn):
    from demoscope.lenses.registry import lens_of

    rng = np.random.default_rng(2)
    raw = spearman_rows(rng)
    sae = pl.DataFrame(
        [{"mask": "causal", "site": "mlp_out", "feature": feature, "layer": layer, "quality": "accuracy",
          "rho": float(rng.uniform(-0.6, 0.6)), "pvalue": 0.5, "padj": 0.5}
         for feature in ("sae_nmse", "sae_l0") for layer in (1, 3)]
    )
    table = pl.concat([raw, sae], how="diagonal_relaxed")
    table = table.with_columns(pl.col("feature").map_elements(lens_of, return_dtype=pl.String).alias("lens"))
    figures.sae_lens(table, "accuracy", 0.33, "m / t", outputs(tmp_path, "sae"))
    figures.sae_lens(table.filter(pl.col("lens") != "sae"), "accuracy", 0.33, "m / t", outputs(tmp_path, "off"))
    fig, off = drawn
    # Only the store the SAE lens read is a panel.
    (ax,) = panels(fig)
    assert ax.get_title() == "causal / mlp_out"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("layer", "|rho| with accuracy")
    lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"best moments feature", "best massive feature", "sae_l0", "sae_nmse"}
    part = table.filter((pl.col("mask") == "causal") & (pl.col("site") == "mlp_out"))
    for feature in ("sae_l0", "sae_nmse"):
        rows = part.filter(pl.col("feature") == feature).sort("layer")
        np.testing.assert_array_equal(lines[feature].get_xdata(), [1, 3])
        np.testing.assert_allclose(lines[feature].get_ydata(), np.abs(rows["rho"].to_numpy()))
    # The best moment per layer: the larger |rho| of mean and variance, the NaN (mean, layer 0) skipped.
    moments = part.filter(pl.col("feature").is_in(["mean", "variance"]))
    best = [np.nanmax(np.abs(moments.filter(pl.col("layer") == layer)["rho"].to_numpy())) for layer in range(4)]
    np.testing.assert_allclose(lines["best moments feature"].get_ydata(), best)
    top1 = store(part, "causal", "mlp_out", "top1")
    np.testing.assert_allclose(lines["best massive feature"].get_ydata(), np.abs(top1["rho"].to_numpy()))
    bounds = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(bounds) == 1 and list(bounds[0].get_ydata()) == [0.33, 0.33]
    # Without SAE rows: one message, no panel with data.
    (message,) = off.axes
    assert not message.axison and "The SAE lens is off" in message.texts[0].get_text()
