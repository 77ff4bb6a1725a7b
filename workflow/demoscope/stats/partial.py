"""Partial Spearman correlation: rho between x and y once covariates are held fixed.

Definition used throughout demoscope: over the rows where x, y and every covariate are
finite, rank x, y and each numeric covariate (average ranks for ties); code each categorical
covariate as 0/1 indicators of its levels (one level dropped); regress the ranks of x and of
y, each by least squares, on an intercept, the covariate ranks and the indicators; the partial
rho is the Pearson correlation of the two residual vectors. Its p-value is the t test with
n - 2 - k degrees of freedom, k the number of covariate columns (the rank of the design minus
the intercept). NaN where a residual is constant, e.g. a feature that is itself a covariate.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def indicators(labels) -> np.ndarray:
    """0/1 columns, one per label level but the first (sorted): a categorical covariate."""
    labels = np.asarray(labels).astype(str)
    return (labels[:, None] == np.unique(labels)[None, 1:]).astype(float)


def partial_spearman(
    x: np.ndarray, y: np.ndarray, numeric: np.ndarray | None = None, categorical: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Partial rho, p-value and n for every column of x (rows x p) against every column of y
    (rows x q), controlling for `numeric` covariates (rows x k, ranked) and `categorical`
    (rows x m 0/1 columns, e.g. `indicators(labels)`, used as they are). Returns three p x q arrays."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n_rows = x.shape[0]
    numeric = np.zeros((n_rows, 0)) if numeric is None else np.asarray(numeric, dtype=float).reshape(n_rows, -1)
    categorical = np.zeros((n_rows, 0)) if categorical is None else np.asarray(categorical, dtype=float).reshape(n_rows, -1)
    controls_finite = np.isfinite(numeric).all(axis=1) & np.isfinite(categorical).all(axis=1)
    rho = np.full((x.shape[1], y.shape[1]), np.nan)
    pvalue = np.full_like(rho, np.nan)
    count = np.zeros(rho.shape, dtype=int)
    for q in range(y.shape[1]):
        rows_ok = np.isfinite(x) & (np.isfinite(y[:, q]) & controls_finite)[:, None]
        # Columns sharing the same usable rows share one design and one projection.
        patterns, group = np.unique(rows_ok.T, axis=0, return_inverse=True)
        for g, keep in enumerate(patterns):
            columns = np.flatnonzero(group.ravel() == g)
            n = int(keep.sum())
            count[columns, q] = n
            design = np.hstack([np.ones((n, 1)), stats.rankdata(numeric[keep], axis=0), categorical[keep]])
            k = np.linalg.matrix_rank(design) - 1
            if n - 2 - k < 1:
                continue
            ranks = np.hstack([stats.rankdata(x[keep][:, columns], axis=0), stats.rankdata(y[keep, q])[:, None]])
            residual = ranks - design @ np.linalg.lstsq(design, ranks, rcond=None)[0]
            scale = ((ranks - ranks.mean(axis=0)) ** 2).sum(axis=0)
            square = (residual**2).sum(axis=0)
            # Constant ranks (ranks that differ, differ by >= 1/2), or a residual this small
            # relative to its ranks' spread (a covariate explains the ranks exactly), is flat.
            flat = (scale <= 1e-9 * n) | (square <= 1e-10 * scale)
            with np.errstate(invalid="ignore", divide="ignore"):
                r = (residual[:, :-1] * residual[:, [-1]]).sum(axis=0) / np.sqrt(square[:-1] * square[-1])
            r = np.where(flat[:-1] | flat[-1], np.nan, np.clip(r, -1.0, 1.0))
            df = n - 2 - k
            with np.errstate(invalid="ignore", divide="ignore"):
                t = r * np.sqrt(df / ((1.0 - r) * (1.0 + r)))
            rho[columns, q] = r
            pvalue[columns, q] = np.where(np.isnan(r), np.nan, 2 * stats.t.sf(np.abs(t), df))
    return rho, pvalue, count
