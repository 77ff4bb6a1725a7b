"""The permutation max-T null of a family of Spearman tests: what the largest |rho| is by chance.

A model x task's family is every feature x layer x store x quality metric it correlates. Under
the null, quality is exchangeable over candidates: permuting it breaks any link to the features
while keeping their correlations with each other (across layers, features and stores) intact.
For each permutation the largest |rho| over the whole family is one draw of "the headline by
chance". The same permutations (a matrix seeded by the run's seed, model and task) serve every
store's job, so the family's null is the element-wise maximum of the stores' per-permutation
maxima (Westfall & Young 1993, single-step max-T).

Ranks are computed once: the Spearman rho of a complete column is the Pearson correlation of its
average ranks with quality's, and permuting quality permutes its ranks. A feature column with
missing values is ranked over its finite rows, and the permuted quality is ranked again over
those rows, per distinct pattern of missing rows.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import stats

from demoscope.stats.bootstrap import resample_rng


def permutations(n: int, count: int, seed: int, *keys: str) -> np.ndarray:
    """(count x n) permutations of n rows, fixed by the run's seed and names (model, task), so
    that every store's job of that model and task draws the same ones."""
    rng = resample_rng(seed, *keys, "max-null")
    return np.argsort(rng.random((count, n)), axis=1)


def _standardised(ranks: np.ndarray, axis: int) -> np.ndarray:
    """Centred ranks scaled to unit norm along `axis`; NaN where the ranks are constant."""
    centred = ranks - ranks.mean(axis=axis, keepdims=True)
    norm = np.sqrt((centred * centred).sum(axis=axis, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 1e-9, centred / norm, np.nan)


def permuted_abs_rho_max(x: np.ndarray, y: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Per permutation and column of y: the largest |rho| over x's columns between x (rows x p)
    and y permuted over its rows (rows x q). Returns (permutations x q); NaN where no column of
    x gives a defined rho. Undefined rho (a constant side) never counts."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    count, q = perms.shape[0], y.shape[1]
    best = np.full((count, q), np.nan)
    if x.shape[1] == 0:
        return best
    finite = np.isfinite(x)
    patterns, column_pattern = np.unique(finite.T, axis=0, return_inverse=True)
    for index, rows in enumerate(patterns):
        columns = np.flatnonzero(column_pattern.ravel() == index)
        if rows.sum() < 3:
            continue
        x_ranks = _standardised(stats.rankdata(x[np.ix_(rows, columns)], axis=0), axis=0)
        x_ranks = x_ranks[:, np.isfinite(x_ranks).all(axis=0)]
        if x_ranks.shape[1] == 0:
            continue
        for metric in range(q):
            permuted = y[perms, metric][:, rows]  # permutations x kept rows
            if not np.isfinite(permuted).all():
                raise ValueError("quality must be finite for every candidate to be permuted")
            y_ranks = _standardised(stats.rankdata(permuted, axis=1), axis=1)
            rho = np.abs(y_ranks @ x_ranks)  # permutations x columns
            top = rho.max(axis=1)
            best[:, metric] = np.fmax(best[:, metric], np.where(np.isfinite(top), np.minimum(top, 1.0), np.nan))
    return best


def family_pvalue(observed: np.ndarray, null_max: np.ndarray) -> np.ndarray:
    """Family-wise p-value of each observed |rho| against the null's maxima: (1 + the number of
    permutations whose maximum reaches it) / (1 + permutations), so never 0 (Phipson & Smyth
    2010). This is the single-step max-T adjusted p-value; for the family's largest |rho| it is
    the p-value of "some test in the family carries signal". NaN stays NaN."""
    null_sorted = np.sort(np.asarray(null_max, dtype=float)[np.isfinite(null_max)])
    observed = np.abs(np.asarray(observed, dtype=float))
    # A relative tolerance keeps the observed statistic itself (rounding apart) among the draws.
    below = np.searchsorted(null_sorted, observed * (1 - 1e-12), side="left")
    p = (1 + null_sorted.size - below) / (1 + null_sorted.size)
    return np.where(np.isnan(observed), np.nan, p)


NULL_SCHEMA = {"permutation": pl.Int64, "lens": pl.String, "quality": pl.String, "max_abs_rho": pl.Float64}


def null_table(
    features: pl.DataFrame, quality: pl.DataFrame, names: list[str], metrics: list[str], perms: np.ndarray
) -> pl.DataFrame:
    """One store's share of its family's null: per permutation, lens and quality metric, the
    largest |rho| over that lens's features and layers. `quality` is in cand_id order, the
    order the permutations index."""
    from demoscope.lenses.registry import lens_of
    from demoscope.stats.rhotable import feature_matrix

    cand_ids = quality["cand_id"].to_numpy()
    frames = [pl.DataFrame(schema=NULL_SCHEMA)]
    if metrics:
        x, _ = feature_matrix(features, cand_ids, names)
        y = quality.select(metrics).to_numpy().astype(float)
        column_lens = np.array([lens_of(names[c % len(names)]) for c in range(x.shape[1])])
        for lens in sorted(set(column_lens)):
            best = permuted_abs_rho_max(x[:, column_lens == lens], y, perms)
            frames.append(
                pl.DataFrame(
                    {
                        "permutation": np.repeat(np.arange(len(perms)), len(metrics)),
                        "lens": lens,
                        "quality": np.tile(metrics, len(perms)),
                        "max_abs_rho": best.ravel(),
                    },
                    schema=NULL_SCHEMA,
                )
            )
    return pl.concat(frames)


def family_null(tables: list[pl.DataFrame], by: list[str] | None = None) -> pl.DataFrame:
    """The family's null from its stores' tables: per permutation (and `by` columns, e.g. lens),
    the largest |rho| of all of them."""
    keys = ["permutation", *(by or [])]
    table = pl.concat([t.select(*keys, "max_abs_rho") for t in tables]) if tables else pl.DataFrame(schema=NULL_SCHEMA)
    return table.group_by(keys).agg(pl.col("max_abs_rho").max()).sort(keys)
