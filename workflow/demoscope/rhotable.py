"""One activation store's rho rows: every feature at every layer against every quality metric.

Each row carries Spearman rho over the candidates with its p-value and n, a percentile
bootstrap interval over candidates, and the partial rho with its p-value that holds the
demonstration's token count (and, for classification, its label) fixed.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .bootstrap import bootstrap_interval
from .correlate import spearman_columns, spearman_pvalue
from .partial import indicators, partial_spearman

COLUMNS = [
    "feature", "layer", "quality", "rho", "pvalue", "n", "ci_low", "ci_high",
    "partial_rho", "partial_pvalue", "controls",
]
SCHEMA = {
    "feature": pl.String, "layer": pl.Int64, "quality": pl.String, "rho": pl.Float64, "pvalue": pl.Float64,
    "n": pl.Int64, "ci_low": pl.Float64, "ci_high": pl.Float64, "partial_rho": pl.Float64,
    "partial_pvalue": pl.Float64, "controls": pl.String,
}


def feature_matrix(features: pl.DataFrame, cand_ids: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[int]]:
    """(candidates x (layers * features)) in the order of `cand_ids`, layer-major, and the layers.
    A table without a `layer` column (the controls lens) is one layer, reported as None."""
    if "layer" not in features.columns:
        full = pl.DataFrame({"cand_id": cand_ids}).join(features.select("cand_id", *names), on="cand_id", how="left")
        layers = [None]
    else:
        layers = sorted(features["layer"].unique().to_list())
        grid = pl.DataFrame({"cand_id": np.repeat(cand_ids, len(layers)), "layer": np.tile(layers, len(cand_ids))})
        full = grid.join(features.select("cand_id", "layer", *names), on=["cand_id", "layer"], how="left")
    if full.select(pl.col(names[0]).is_null().any()).item():
        raise ValueError("the feature table lacks some candidate x layer rows")
    values = full.select(names).to_numpy().astype(float)
    return values.reshape(len(cand_ids), len(layers) * len(names)), layers


def rho_rows(
    features: pl.DataFrame,
    quality: pl.DataFrame,
    names: list[str],
    metrics: list[str],
    n_resamples: int,
    rng: np.random.Generator,
    control_label: bool,
    level: float = 0.95,
) -> pl.DataFrame:
    """`quality` has cand_id, the metrics, `n_tokens` (the demonstration's token count) and,
    when `control_label`, `label`. Candidates are those of `quality`, in cand_id order. A
    feature table without a `layer` column (the controls lens) gives rows whose layer is null."""
    quality = quality.sort("cand_id")
    if not metrics:
        return pl.DataFrame(schema=SCHEMA)
    cand_ids = quality["cand_id"].to_numpy()
    x, layers = feature_matrix(features, cand_ids, names)
    y = quality.select(metrics).to_numpy().astype(float)
    rho, n = spearman_columns(x, y)
    rho = rho[0]
    low, high = bootstrap_interval(x, y, n_resamples, rng, level)
    labels = indicators(quality["label"].to_numpy()) if control_label else None
    partial, partial_p, _ = partial_spearman(x, y, quality["n_tokens"].to_numpy(), labels)
    shape = rho.shape  # (layers * features) x metrics
    column = np.arange(shape[0])
    table = pl.DataFrame(
        {
            "feature": np.repeat(np.array(names)[column % len(names)], shape[1]),
            "layer": np.repeat(np.array(layers)[column // len(names)], shape[1]),
            "quality": np.tile(metrics, shape[0]),
            "rho": rho.ravel(),
            "pvalue": spearman_pvalue(rho, n).ravel(),
            "n": n.ravel(),
            "ci_low": low.ravel(),
            "ci_high": high.ravel(),
            "partial_rho": partial.ravel(),
            "partial_pvalue": partial_p.ravel(),
            "controls": "n_tokens,label" if control_label else "n_tokens",
        },
        schema_overrides={"layer": pl.Int64},
    )
    return table.sort("quality", "feature", "layer")
