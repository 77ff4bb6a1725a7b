"""One activation store's rho rows: every feature at every layer against every quality metric.

Each row carries Spearman rho over the candidates with its p-value and n, a percentile
bootstrap interval over candidates, and the partial rho with its p-value that holds the
demonstration's token count (and, for classification, its label) fixed.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from demoscope.stats.bootstrap import bootstrap_interval
from demoscope.stats.correlate import spearman_columns, spearman_pvalue
from demoscope.stats.partial import indicators, partial_spearman

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


def rho_table(
    names: list[str], layers: list, metrics, columns: dict, metric_column: str = "quality"
) -> pl.DataFrame:
    """The one builder of a rho output table, for the quality side (`rho_rows`) and the task
    side (`taskcorr.task_rho_rows`): the statistics are (layers * features) x metrics arrays,
    layer-major as `feature_matrix` lays its columns out; each becomes one row per feature,
    layer and metric, keyed by `feature`, `layer` and `metric_column`, then the `columns` in
    their order (an array of that shape, or one value for every row). Sorted by metric,
    feature, layer."""
    shape = (len(layers) * len(names), len(metrics))
    column = np.arange(shape[0])
    data = {
        "feature": np.repeat(np.array(names)[column % len(names)], shape[1]),
        "layer": np.repeat(np.array(layers)[column // len(names)], shape[1]),
        metric_column: np.tile(metrics, shape[0]),
    }
    for name, value in columns.items():
        if isinstance(value, np.ndarray):
            if value.shape != shape:
                raise ValueError(f"rho_table: column {name} has shape {value.shape}, not {shape}")
            value = value.ravel()
        data[name] = value
    table = pl.DataFrame(data, schema_overrides={"layer": pl.Int64})
    return table.sort(metric_column, "feature", "layer")


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
    return rho_table(
        names,
        layers,
        metrics,
        {
            "rho": rho,
            "pvalue": spearman_pvalue(rho, n),
            "n": n,
            "ci_low": low,
            "ci_high": high,
            "partial_rho": partial,
            "partial_pvalue": partial_p,
            "controls": "n_tokens,label" if control_label else "n_tokens",
        },
    )
