"""The first four moments of a block of activation values.

Variance is the population variance (ddof=0), the one skewness and kurtosis
are built on; skewness and excess kurtosis are the `scipy.stats` defaults
(biased, Fisher).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

MOMENTS = ("mean", "variance", "skewness", "kurtosis")


def moments(values: np.ndarray) -> dict[str, float]:
    """Moments over every value of the array (all tokens x hidden dims)."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0:
        return dict.fromkeys(MOMENTS, float("nan"))
    constant = np.ptp(flat) == 0  # scipy warns and returns NaN for skew/kurtosis of constant data
    return {
        "mean": float(flat.mean()),
        "variance": float(flat.var()),
        "skewness": float("nan") if constant else float(stats.skew(flat)),
        "kurtosis": float("nan") if constant else float(stats.kurtosis(flat)),
    }


def token_moments(tokens: np.ndarray) -> dict[str, float]:
    """Moments over all tokens x dims, and over the last token's dims alone; NaN for no tokens."""
    whole = moments(tokens)
    last = moments(tokens[-1]) if len(tokens) else dict.fromkeys(MOMENTS, float("nan"))
    return {**whole, **{f"last_{k}": v for k, v in last.items()}}
