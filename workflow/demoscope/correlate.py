"""Spearman correlation between each feature (per layer) and each quality metric."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import stats


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    """rho, p-value and n over the finite pairs; NaN (never 0) when either side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(keep.sum())
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan"), n
    result = stats.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue), n


def correlate(
    features: pl.DataFrame, quality: pl.DataFrame, feature_names: list[str], metrics: list[str]
) -> pl.DataFrame:
    """One row per feature x layer x quality metric."""
    joined = features.join(quality.select(["cand_id", *metrics]), on="cand_id", how="inner")
    rows = []
    for (layer,), part in joined.group_by(["layer"], maintain_order=True):
        for feature in feature_names:
            x = part[feature].to_numpy()
            for metric in metrics:
                rho, p, n = spearman(x, part[metric].to_numpy())
                rows.append({"feature": feature, "layer": layer, "quality": metric, "rho": rho, "pvalue": p, "n": n})
    return pl.DataFrame(rows).sort("quality", "feature", "layer")
