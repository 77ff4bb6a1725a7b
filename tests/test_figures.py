"""Each figure function draws from a synthetic table and writes every format it is given."""

import numpy as np
import polars as pl
import pytest

from demoscope import figures
from demoscope.fdr import with_adjusted

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
        for feature in ("mean", "top1", "n_tokens")
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
    from demoscope.lenses import lens_of

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
    from demoscope import paired

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
