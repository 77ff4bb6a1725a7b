"""Benjamini-Hochberg adjusted p-values over a family of tests.

The family is every test of a run that has a p-value (NaN p-values, from undefined
correlations, are not tests and stay NaN). The adjusted value of the i-th smallest of m
p-values is min over j >= i of p_(j) * m / j, capped at 1: the same numbers as
`scipy.stats.false_discovery_control(p, method="bh")`. Rejecting where it is below alpha
controls the false discovery rate at alpha for independent or positively dependent tests
(the correlations of neighbouring layers are positively dependent).
"""

from __future__ import annotations

import numpy as np
import polars as pl


def bh_adjust(pvalues) -> np.ndarray:
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    if tested.size == 0:
        return adjusted
    order = tested[np.argsort(p[tested], kind="stable")]
    m = tested.size
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return adjusted


def with_adjusted(table: pl.DataFrame, pvalue: str = "pvalue", adjusted: str = "padj") -> pl.DataFrame:
    """`table` with column `adjusted`: BH over all of its rows, one family."""
    return table.with_columns(pl.Series(adjusted, bh_adjust(table[pvalue].to_numpy())))
