"""The run's selection tables: test accuracy per strategy, and the task side's Spearman rows.

A strategy's accuracy is the mean over its instances (the random seeds; one instance for every
other strategy) of the instance's accuracy on the test queries. Its 95% interval is a
t-interval over the instances when there are several, and otherwise a Wilson score interval
over the test queries (correct or not, one trial each).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from scipy import stats

from .strategies import KINDS, REFERENCE, group, kind_of


STRATEGY_SCHEMA = {
    "model": pl.String, "task": pl.String, "strategy": pl.String, "kind": pl.String, "reference": pl.Boolean,
    "n_seeds": pl.Int64, "n_queries": pl.Int64, "mean_accuracy": pl.Float64, "ci_low": pl.Float64,
    "ci_high": pl.Float64, "interval": pl.String, "mean_gold_logprob": pl.Float64, "accuracies": pl.String,
    "detail": pl.String,
}


def wilson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    if trials == 0:
        return math.nan, math.nan
    z = stats.norm.ppf(0.5 + level / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    # The bounds meet p at 0 and 1, where rounding could put them a hair past it.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    mean, n = float(np.mean(values)), len(values)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * float(np.std(values, ddof=1)) / math.sqrt(n)
    return max(0.0, mean - half), min(1.0, mean + half)


def strategy_table(evaluations: list[tuple[dict, pl.DataFrame]], level: float = 0.95) -> pl.DataFrame:
    """`evaluations`: ({model, task, strategy (instance name), detail}, per-query evaluation).
    One row per model x task x strategy (random seeds pooled)."""
    runs = [
        {
            **keys,
            "group": group(keys["strategy"]),
            "accuracy": float(table["correct"].mean()),
            "correct": int(table["correct"].sum()),
            "queries": table.height,
            "gold_logprob": float(table["gold_logprob"].mean()),
        }
        for keys, table in evaluations
    ]
    rows = []
    for (model, task, name), members in _grouped(runs).items():
        accuracy = np.array([r["accuracy"] for r in members])
        if len(members) > 1:
            low, high = t_interval(accuracy, level)
            interval = f"t over {len(members)} seeds"
        else:
            low, high = wilson(members[0]["correct"], members[0]["queries"], level)
            interval = f"Wilson over {members[0]['queries']} queries"
        kind = kind_of(name)
        rows.append(
            {
                "model": model, "task": task, "strategy": name, "kind": kind, "reference": kind in REFERENCE,
                "n_seeds": len(members), "n_queries": members[0]["queries"], "mean_accuracy": float(accuracy.mean()),
                "ci_low": low, "ci_high": high, "interval": interval,
                "mean_gold_logprob": float(np.mean([r["gold_logprob"] for r in members])),
                "accuracies": ",".join(f"{a:.4f}" for a in accuracy),
                "detail": members[0]["detail"] if len(members) == 1 else "",
            }
        )
    if not rows:
        return pl.DataFrame(schema=STRATEGY_SCHEMA)
    table = pl.DataFrame(rows, schema=STRATEGY_SCHEMA)
    order = {kind: i for i, kind in enumerate(KINDS)}
    # Kinds in a fixed order; within a kind, the order the instances came in (the config's).
    return (
        table.with_columns(
            pl.col("kind").replace_strict(order, return_dtype=pl.Int64).alias("_kind"),
            pl.int_range(pl.len()).alias("_first"),
        )
        .sort("model", "task", "_kind", "_first")
        .drop("_kind", "_first")
    )


def _grouped(runs: list[dict]) -> dict[tuple, list[dict]]:
    """Instances by (model, task, row), rows in order of first appearance, seeds ascending."""
    out: dict[tuple, list[dict]] = {}
    for run in runs:
        out.setdefault((run["model"], run["task"], run["group"]), []).append(run)
    for members in out.values():
        members.sort(key=lambda r: int(r["strategy"][len("random-s"):]) if r["group"] == "random" else 0)
    return out


def task_spearman_table(parts: list[tuple[dict, pl.DataFrame]]) -> pl.DataFrame:
    """The (model, task) tables of task-side rho rows, tagged and stacked."""
    keys = ["model", "task", "mask", "site"]
    tables = [rows.with_columns(*[pl.lit(tags[k]).alias(k) for k in keys[:2]]) for tags, rows in parts]
    table = pl.concat(tables).sort(keys + ["metric", "feature", "layer"])
    first = keys + [c for c in ("lens",) if c in table.columns] + ["feature", "layer", "metric", "rho", "pvalue", "n"]
    return table.select(first + [c for c in table.columns if c not in first])
