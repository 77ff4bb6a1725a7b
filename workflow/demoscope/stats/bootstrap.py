"""Percentile bootstrap intervals for Spearman rho, over candidates.

A resample draws n candidates with replacement; every feature, layer and metric of a store is
recomputed on the same resamples (the rows are paired), and the same seed gives the same
resamples to every store of a model and task. A resample is held as row counts, so one sort
per column serves all resamples (`correlate.spearman_columns`).
"""

from __future__ import annotations

import zlib

import numpy as np

from demoscope.stats.correlate import spearman_columns


def resample_rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator fixed by the run's seed and names (e.g. model, task), independent of which
    other models or tasks the run holds."""
    return np.random.default_rng([seed, *(zlib.crc32(key.encode()) for key in keys)])


def resample_counts(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples x n) counts: how often each of n rows is drawn in each resample of size n."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(float)


def bootstrap_interval(
    x: np.ndarray, y: np.ndarray, n_resamples: int, rng: np.random.Generator, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of rho for every column of x against every column of y (p x q each).

    Rows with a non-finite value drop out of the pairs they belong to, within each resample,
    as they do for the point estimate. Resamples where a side is constant (rho undefined) are
    left out of the quantiles; NaN where no resample gives a rho."""
    counts = resample_counts(x.shape[0], n_resamples, rng)
    rho, _ = spearman_columns(x, y, counts)
    tail = (1.0 - level) / 2
    defined = np.isfinite(rho).any(axis=0)
    filled = np.where(defined[None], rho, 0.0)  # keeps nanquantile quiet on all-NaN columns
    low, high = np.nanquantile(filled, [tail, 1.0 - tail], axis=0)
    return np.where(defined, low, np.nan), np.where(defined, high, np.nan)
