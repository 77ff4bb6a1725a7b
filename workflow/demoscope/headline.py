"""The headline of a run: per model x task, its strongest correlation set against the study's bound.

Works on any table of rho rows: `model`, `task`, `rho`, `ci_low`, `ci_high`, `pvalue`, `padj`
and, when present, `partial_rho`, `partial_pvalue`, `partial_padj`; every other column (feature,
layer, mask, site, quality, ...) says where a row came from and is carried into the headline.
"""

from __future__ import annotations

import polars as pl

KEYS = ["model", "task"]
STATS = [
    "rho", "pvalue", "n", "ci_low", "ci_high", "padj",
    "partial_rho", "partial_pvalue", "partial_padj", "controls",
]


def _strongest(table: pl.DataFrame, column: str) -> pl.DataFrame:
    """The row with the largest finite |column| per model and task."""
    return (
        table.filter(pl.col(column).is_finite())
        .sort(pl.col(column).abs(), descending=True, maintain_order=True)
        .group_by(KEYS, maintain_order=True)
        .first()
    )


def headline(table: pl.DataFrame, bound: float, alpha: float) -> pl.DataFrame:
    """One row per model x task: the largest |rho| with its interval and origin, whether it
    exceeds the bound (`above_bound`) and whether its whole interval lies beyond it
    (`ci_beyond_bound`), how many tests there were, how many were defined, and how many pass
    BH at `alpha`; then the same for the partial rho where the table has one."""
    where = [c for c in table.columns if c not in KEYS + STATS]
    counts = table.group_by(KEYS).agg(
        pl.len().alias("tests"),
        pl.col("rho").is_finite().sum().alias("defined"),
        (pl.col("padj") < alpha).sum().alias("significant"),
    )
    best = _strongest(table, "rho").select(
        *KEYS,
        pl.col("rho").abs().alias("max_abs_rho"),
        "rho", "ci_low", "ci_high", "pvalue", "padj", *[c for c in ("n",) if c in table.columns], *where,
    )
    out = counts.join(best, on=KEYS, how="left").with_columns(
        pl.lit(bound).alias("bound"),
        (pl.col("max_abs_rho") > bound).alias("above_bound"),
        ((pl.col("ci_low") > bound) | (pl.col("ci_high") < -bound)).alias("ci_beyond_bound"),
    )
    if "partial_rho" in table.columns:
        partial = _strongest(table, "partial_rho").select(
            *KEYS,
            pl.col("partial_rho").abs().alias("max_abs_partial_rho"),
            "partial_rho", "partial_pvalue", "partial_padj",
            *[pl.col(c).alias(f"partial_{c}") for c in where],
            *[c for c in ("controls",) if c in table.columns],
        )
        partial_counts = table.group_by(KEYS).agg((pl.col("partial_padj") < alpha).sum().alias("partial_significant"))
        out = out.join(partial, on=KEYS, how="left").join(partial_counts, on=KEYS, how="left")
    return out.sort(KEYS)
