"""How reliable a quality measurement is, and the ceiling that puts on any correlation with it.

A candidate's quality is a mean over quality queries, each a noisy outcome. Split-half
reliability: split the queries at random into two halves, label-balanced (each label's
queries are split in two as evenly as they go), take each candidate's mean on each half,
correlate the two over candidates (Pearson: classical test theory is stated for it), and
step it up to the full query count with the Spearman-Brown formula
r_full = f r / (1 + (f - 1) r), f = queries / half size. Repeated over many random splits, the
mean is the estimate and the spread says how much the estimate itself varies.

No feature can correlate with the measured quality beyond sqrt(reliability), the noise ceiling;
rho / sqrt(reliability) is the disattenuated correlation (Spearman 1904).
"""

from __future__ import annotations

import numpy as np


def spearman_brown(r, factor) -> np.ndarray:
    """Reliability of a measure `factor` times as long as one of reliability r."""
    r, factor = np.asarray(r, dtype=float), np.asarray(factor, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return factor * r / (1 + (factor - 1) * r)


def balanced_halves(labels: np.ndarray, splits: int, rng: np.random.Generator) -> np.ndarray:
    """(splits x queries) booleans: True for the first half. Each label's queries go half to
    each side; the odd ones out (one per label with an odd count) are dealt alternately, in a
    random order, so the halves differ in size by at most one and neither favours a label."""
    labels = np.asarray(labels)
    first = np.zeros((splits, len(labels)), dtype=bool)
    groups = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    for split in range(splits):
        extras = []
        for members in groups:
            order = rng.permutation(members)
            half = len(order) // 2
            first[split, order[:half]] = True
            if len(order) % 2:
                extras.append(order[-1])
        extras = rng.permutation(np.array(extras, dtype=int))
        first[split, extras[rng.integers(2)::2]] = True
    return first


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation over axis 1 of (splits x candidates) arrays; NaN if a side is constant."""
    da = a - a.mean(axis=1, keepdims=True)
    db = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (da * db).sum(axis=1) / np.sqrt((da * da).sum(axis=1) * (db * db).sum(axis=1))
    return np.where(np.isfinite(r), np.clip(r, -1.0, 1.0), np.nan)


def split_half(outcomes: np.ndarray, labels: np.ndarray, splits: int, rng: np.random.Generator) -> np.ndarray:
    """Spearman-Brown corrected split-half reliability of the per-candidate mean of
    `outcomes` (candidates x queries), one value per random label-balanced split; NaN for a
    split where a half is constant over candidates. Needs at least two queries."""
    outcomes = np.asarray(outcomes, dtype=float)
    queries = outcomes.shape[1]
    if queries < 2:
        return np.full(splits, np.nan)
    first = balanced_halves(labels, splits, rng)
    size_a = first.sum(axis=1)
    size_b = queries - size_a
    mean_a = (outcomes[None] * first[:, None, :]).sum(axis=2) / size_a[:, None]
    mean_b = (outcomes[None] * ~first[:, None, :]).sum(axis=2) / size_b[:, None]
    r = _rowwise_pearson(mean_a, mean_b)
    # Halves of unequal size (odd counts): step up from their mean size. A non-positive
    # correlation has nothing to step up (the formula would leave [-1, 1]): it stays as it is.
    stepped = spearman_brown(np.clip(r, 0.0, None), queries / ((size_a + size_b) / 2))
    return np.where(r > 0, stepped, r)


def summarise_splits(values: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation and 2.5/97.5 percentiles over the defined splits."""
    values = np.asarray(values, dtype=float)
    defined = values[np.isfinite(values)]
    if defined.size == 0:
        return {"reliability": np.nan, "reliability_sd": np.nan, "reliability_low": np.nan,
                "reliability_high": np.nan, "splits_defined": 0}
    low, high = np.quantile(defined, [0.025, 0.975])
    return {
        "reliability": float(defined.mean()),
        "reliability_sd": float(defined.std(ddof=1)) if defined.size > 1 else 0.0,
        "reliability_low": float(low),
        "reliability_high": float(high),
        "splits_defined": int(defined.size),
    }


def noise_ceiling(reliability) -> np.ndarray:
    """sqrt(reliability): the largest correlation any error-free feature can show with the
    measured quality. 0 for a non-positive reliability."""
    reliability = np.asarray(reliability, dtype=float)
    return np.where(np.isnan(reliability), np.nan, np.sqrt(np.clip(reliability, 0.0, 1.0)))


def balanced_subsample(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `size` queries, as label-balanced as the labels allow (round-robin over labels
    in a random order, each label's queries shuffled)."""
    labels = np.asarray(labels)
    groups = [rng.permutation(np.flatnonzero(labels == label)) for label in rng.permutation(np.unique(labels))]
    picked, depth = [], 0
    while len(picked) < size:
        for group in groups:
            if depth < len(group) and len(picked) < size:
                picked.append(group[depth])
        depth += 1
    return np.array(sorted(picked))


def reliability_curve(
    outcomes: np.ndarray, labels: np.ndarray, sizes: list[int], splits: int, rng: np.random.Generator
) -> list[dict]:
    """Reliability at each number of queries in `sizes` (each <= the queries measured): for each
    of `splits` draws, a label-balanced subsample of that many queries is split in half and
    stepped up to its size. What a user would have measured with fewer queries."""
    outcomes, labels = np.asarray(outcomes, dtype=float), np.asarray(labels)
    rows = []
    for size in sizes:
        values = np.empty(splits)
        for draw in range(splits):
            keep = balanced_subsample(labels, size, rng)
            values[draw] = split_half(outcomes[:, keep], labels[keep], 1, rng)[0]
        rows.append({"queries": int(size), **summarise_splits(values)})
    return rows


def curve_sizes(queries: int) -> list[int]:
    """Query counts at which the reliability curve is measured: powers of two from 2, and all."""
    sizes, size = [], 2
    while size < queries:
        sizes.append(size)
        size *= 2
    return sizes + [queries] if queries >= 2 else []


def reliability_tables(by_query, quality, metrics: list[str], splits: int, rng: np.random.Generator,
                       degenerate_share: float = 0.8):
    """Per metric, its split-half reliability and noise ceiling (with `degenerate`, the reason a
    metric is not correlated, or null); and per metric and query count, the reliability curve
    measured by subsampling the same candidate x query matrix."""
    import polars as pl

    from demoscope.stats.degenerate import degenerate_reason
    from demoscope.quality.metrics import OUTCOME_OF

    by_query = by_query.sort("cand_id", "query_id")
    cand_ids = by_query["cand_id"].unique(maintain_order=True).to_numpy()
    query_ids = by_query.filter(pl.col("cand_id") == cand_ids[0])["query_id"].to_numpy()
    labels = by_query.filter(pl.col("cand_id") == cand_ids[0])["query_label"].to_numpy()
    quality = quality.sort("cand_id")
    summary, curve = [], []
    for metric in metrics:
        matrix = by_query[OUTCOME_OF[metric]].to_numpy().reshape(len(cand_ids), len(query_ids))
        estimate = summarise_splits(split_half(matrix, labels, splits, rng))
        summary.append(
            {
                "metric": metric, "candidates": len(cand_ids), "queries": len(query_ids), **estimate,
                "noise_ceiling": float(noise_ceiling(estimate["reliability"])),
                "degenerate": degenerate_reason(quality[metric].to_numpy(), degenerate_share),
            }
        )
        curve += [{"metric": metric, **row} for row in reliability_curve(
            matrix, labels, curve_sizes(len(query_ids)), max(splits // 4, 20), rng)]
    schema = {"degenerate": pl.String}
    return pl.DataFrame(summary, schema_overrides=schema), pl.DataFrame(curve)
