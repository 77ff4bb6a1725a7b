"""Spearman correlation between columns of two tables, vectorised over columns and resamples.

Every rho is computed one way: the average ranks (ties share their mean rank) of a sample in
which row i appears w[i] times, and the weighted Pearson correlation of those ranks. With unit
weights that is `scipy.stats.spearmanr`; with the counts of a bootstrap resample it equals
ranking the resampled rows afresh, so one sort per column serves every resample. Pairs where
either side is not finite get weight 0: rho is taken over the finite pairs.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

# Elements of one (resamples x rows x columns) block: a few MB, which stays in cache.
BLOCK_ELEMENTS = 300_000


def _tie_groups(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For columns sorted along axis 0: each position's group of equal values as [start, end)."""
    n = sorted_values.shape[0]
    position = np.arange(n)[:, None]
    first = np.ones(sorted_values.shape, bool)
    first[1:] = sorted_values[1:] != sorted_values[:-1]
    last = np.ones(sorted_values.shape, bool)
    last[:-1] = first[1:]
    start = np.maximum.accumulate(np.where(first, position, 0), axis=0)
    end = np.minimum.accumulate(np.where(last, position, n - 1)[::-1], axis=0)[::-1] + 1
    return start, end


def _sorted_ranks(sorted_values: np.ndarray, sorted_weights: np.ndarray) -> np.ndarray:
    """Average ranks in sorted order: each row's rank is the weight sorted below it plus
    (the weight of its tie group + 1) / 2. sorted_weights: resamples x rows x columns."""
    start, end = _tie_groups(sorted_values)
    cumulative = np.zeros((sorted_weights.shape[0], sorted_weights.shape[1] + 1, sorted_weights.shape[2]))
    np.cumsum(sorted_weights, axis=1, out=cumulative[:, 1:])
    shape = sorted_weights.shape
    below = np.take_along_axis(cumulative, np.broadcast_to(start[None], shape), axis=1)
    tied = np.take_along_axis(cumulative, np.broadcast_to(end[None], shape), axis=1) - below
    return below + (tied + 1) / 2


def weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks of `values` (rows x columns) in samples where row i counts `weights[b, i, c]`
    times (weights: resamples x rows x columns, broadcastable). Rows of weight 0 take no part
    (their own rank is meaningless)."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, axis=0, kind="stable")
    shape = (weights.shape[0], *values.shape)
    w = np.take_along_axis(np.broadcast_to(weights, shape), np.broadcast_to(order[None], shape), axis=1)
    ranks = _sorted_ranks(np.take_along_axis(values, order, axis=0), w)
    inverse = np.argsort(order, axis=0)
    return np.take_along_axis(ranks, np.broadcast_to(inverse[None], shape), axis=1)


def weighted_pearson(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson correlation over axis 1 with weights; NaN where either side is constant or fewer
    than 3 rows carry weight."""
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        da = a - (w * a).sum(axis=1, keepdims=True) / total[:, None]
        db = b - (w * b).sum(axis=1, keepdims=True) / total[:, None]
        var_a, var_b = (w * da * da).sum(axis=1), (w * db * db).sum(axis=1)
        rho = (w * da * db).sum(axis=1) / np.sqrt(var_a * var_b)
    # Ranks that differ at all differ by >= 1/2, so a rank variance this small is exactly 0.
    constant = (var_a <= 1e-9 * total) | (var_b <= 1e-9 * total)
    present = (w > 0).sum(axis=1)
    return np.where(constant | (present < 3), np.nan, np.clip(rho, -1.0, 1.0))


def _complete_block(x: np.ndarray, y_ranks: np.ndarray, y_square: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """rho of columns without a missing value against one complete y, given y's ranks
    (resamples x rows) and their weighted sum of squares. The ranks of N weighted rows always
    sum to N(N+1)/2, so only the cross and square sums are needed, taken in x's sorted order."""
    order = np.argsort(x, axis=0, kind="stable")
    sorted_x = np.take_along_axis(x, order, axis=0)
    w = weights[:, order]
    ranks = np.cumsum(w, axis=1)
    ranks -= 0.5 * w
    ranks += 0.5  # rows without ties: weight below + (w + 1) / 2
    ties = (sorted_x[1:] == sorted_x[:-1]).any(axis=0)
    if ties.any():
        ranks[:, :, ties] = _sorted_ranks(sorted_x[:, ties], w[:, :, ties])
    total = weights.sum(axis=1)[:, None]
    centre = total * ((total + 1) / 2) ** 2
    w *= ranks
    var_x = np.einsum("bnc,bnc->bc", w, ranks) - centre
    cov = np.einsum("bnc,bnc->bc", w, y_ranks[:, order]) - centre
    var_y = y_square[:, None] - centre
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = cov / np.sqrt(var_x * var_y)
    constant = (var_x <= 1e-9 * total) | (var_y <= 1e-9 * total)
    return np.where(constant | (x.shape[0] < 3), np.nan, np.clip(rho, -1.0, 1.0))


def spearman_columns(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """rho between every column of `x` (rows x p) and of `y` (rows x q): (resamples x p x q), and
    the number of finite pairs (p x q). `weights` (resamples x rows) are row counts; None is the
    sample itself."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n, p = x.shape
    weights = np.ones((1, n)) if weights is None else np.asarray(weights, dtype=float)
    rho = np.full((weights.shape[0], p, y.shape[1]), np.nan)
    x_finite = np.isfinite(x)
    pairs = x_finite.T.astype(int) @ np.isfinite(y).astype(int)
    width = max(1, BLOCK_ELEMENTS // (weights.shape[0] * max(n, 1)))
    for q in range(y.shape[1]):
        y_finite = np.isfinite(y[:, q])
        complete = x_finite.all(axis=0) & y_finite.all()
        if complete.any():
            y_ranks = weighted_ranks(y[:, [q]], weights[:, :, None])[:, :, 0]
            y_square = (weights * y_ranks * y_ranks).sum(axis=1)
            columns = np.flatnonzero(complete)
            for first in range(0, len(columns), width):
                chosen = columns[first : first + width]
                rho[:, chosen, q] = _complete_block(x[:, chosen], y_ranks, y_square, weights)
        columns = np.flatnonzero(~complete)
        for first in range(0, len(columns), width):
            chosen = columns[first : first + width]
            block = x[:, chosen]
            w = weights[:, :, None] * (x_finite[:, chosen] & y_finite[:, None])[None]
            y_block = np.broadcast_to(y[:, [q]], block.shape)
            rho[:, chosen, q] = weighted_pearson(weighted_ranks(block, w), weighted_ranks(y_block, w), w)
    return rho, pairs


def spearman_pvalue(rho: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Two-sided p-value of rho under independence, as `scipy.stats.spearmanr` computes it:
    t = rho * sqrt((n - 2) / (1 - rho^2)) with n - 2 degrees of freedom."""
    rho, df = np.asarray(rho, dtype=float), np.asarray(n, dtype=float) - 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t = rho * np.sqrt(df / ((1.0 + rho) * (1.0 - rho)))
        return np.where(np.isnan(rho) | (df < 1), np.nan, 2 * stats.t.sf(np.abs(t), df))


def spearman(x, y) -> tuple[float, float, int]:
    """rho, p-value and n of two vectors over their finite pairs; NaN (never 0) when either side
    is constant."""
    rho, n = spearman_columns(np.asarray(x, dtype=float)[:, None], np.asarray(y, dtype=float)[:, None])
    return float(rho[0, 0, 0]), float(spearman_pvalue(rho[0, 0, 0], n[0, 0])), int(n[0, 0])
