"""The run's selection tables: test accuracy per strategy, and the task side's Spearman rows.

A strategy's accuracy is the mean over its instances (the random seeds; one instance for every
other strategy) of the instance's accuracy on the test queries. Its 95% interval is a
t-interval over the instances when there are several, widened where needed to the Wilson score
interval over the test queries at that accuracy (so that seeds that happen to agree, say two
seeds at 0.5, never give a zero-width interval: the test queries are a sample too); with one
instance it is the Wilson interval over the test queries (correct or not, one trial each).

Every strategy is also compared with random on the same test queries, paired by query id
(`paired`): the difference, its interval, p-value, BH-adjusted p-value across the strategies
of one model x task, the smallest difference the run could detect, and a verdict.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from scipy import stats

from demoscope.stats import paired
from demoscope.stats.fdr import bh_adjust
from demoscope.selection.strategies import KINDS, REFERENCE, group, kind_of


STRATEGY_SCHEMA = {
    "model": pl.String, "task": pl.String, "strategy": pl.String, "kind": pl.String, "reference": pl.Boolean,
    "n_seeds": pl.Int64, "n_queries": pl.Int64, "mean_accuracy": pl.Float64, "ci_low": pl.Float64,
    "ci_high": pl.Float64, "interval": pl.String, "mean_gold_logprob": pl.Float64, "accuracies": pl.String,
    "vs_random_diff": pl.Float64, "vs_random_ci_low": pl.Float64, "vs_random_ci_high": pl.Float64,
    "vs_random_p": pl.Float64, "vs_random_padj": pl.Float64, "vs_random_mdd": pl.Float64, "random_set_sd": pl.Float64,
    "distinguishable": pl.Boolean, "verdict": pl.String, "detail": pl.String,
}
COMPARISON = ("vs_random_diff", "vs_random_ci_low", "vs_random_ci_high", "vs_random_p", "vs_random_mdd")


def wilson(successes: float, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of successes / trials (successes may be fractional: a mean
    accuracy over seeds times the queries)."""
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


def strategy_table(
    evaluations: list[tuple[dict, pl.DataFrame]], level: float = 0.95, alpha: float = 0.05
) -> pl.DataFrame:
    """`evaluations`: ({model, task, strategy (instance name), detail}, per-query evaluation with
    `query_id`, `correct`, `gold_logprob`). One row per model x task x strategy (random seeds
    pooled), with its paired comparison against random (`paired`); BH runs over the compared
    strategies of each model x task, at `alpha` (the run's `report.alpha`)."""
    runs = []
    for keys, table in evaluations:
        if "query_id" not in table.columns:
            raise ValueError(f"evaluation of {keys['model']}/{keys['task']}/{keys['strategy']} has no query_id column")
        ordered = table.sort("query_id")
        runs.append(
            {
                **keys,
                "group": group(keys["strategy"]),
                "accuracy": float(table["correct"].mean()),
                "correct": int(table["correct"].sum()),
                "queries": table.height,
                "gold_logprob": float(table["gold_logprob"].mean()),
                "query_ids": ordered["query_id"].to_numpy(),
                "by_query": ordered["correct"].cast(pl.Float64).to_numpy(),
            }
        )
    rows = []
    for (model, task), members_by_row in _by_task(_grouped(runs)).items():
        random = members_by_row.get("random")
        compared = []
        for name, members in members_by_row.items():
            row = _accuracy_row(model, task, name, members, level)
            if random is not None and name != "random":
                seeds = np.stack([_aligned(r, members[0]) for r in random])
                result = paired.paired_test(members[0]["by_query"], seeds, alpha)
                row.update({column: float(result[column.removeprefix("vs_random_")]) for column in COMPARISON})
                row["random_set_sd"] = float(result["set_sd"])
                compared.append(row)
            elif name == "random" and len(members) > 1:
                seeds = np.stack([_aligned(r, members[0]) for r in members])
                row["random_set_sd"] = float(np.sqrt(paired.set_variance(seeds)))
            rows.append(row)
        for row, padj in zip(compared, bh_adjust([row["vs_random_p"] for row in compared])):
            row["vs_random_padj"] = float(padj)
            row["verdict"] = paired.verdict(row["n_queries"], padj, row["vs_random_mdd"], alpha)
        for row in rows[-len(members_by_row):]:
            if "verdict" not in row:
                short = row["n_queries"] < paired.min_queries(paired.EFFECT, alpha)
                row["verdict"] = paired.NO_RANDOM if random is None else paired.UNDERPOWERED if short else paired.BASELINE
            row["distinguishable"] = row["verdict"] == paired.DISTINGUISHABLE
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


def _accuracy_row(model: str, task: str, name: str, members: list[dict], level: float) -> dict:
    accuracy = np.array([r["accuracy"] for r in members])
    queries = members[0]["queries"]
    if len(members) > 1:
        low, high = t_interval(accuracy, level)
        w_low, w_high = wilson(float(accuracy.mean()) * queries, queries, level)
        interval = f"t over {len(members)} seeds"
        if w_low < low or w_high > high:  # the seeds agree more than the queries allow
            low, high = min(low, w_low), max(high, w_high)
            interval += f", widened to Wilson over {queries} queries"
    else:
        low, high = wilson(members[0]["correct"], queries, level)
        interval = f"Wilson over {queries} queries"
    kind = kind_of(name)
    return {
        "model": model, "task": task, "strategy": name, "kind": kind, "reference": kind in REFERENCE,
        "n_seeds": len(members), "n_queries": queries, "mean_accuracy": float(accuracy.mean()),
        "ci_low": low, "ci_high": high, "interval": interval,
        "mean_gold_logprob": float(np.mean([r["gold_logprob"] for r in members])),
        "accuracies": ",".join(f"{a:.4f}" for a in accuracy),
        "detail": members[0]["detail"] if len(members) == 1 else "",
    }


def _aligned(run: dict, other: dict) -> np.ndarray:
    """`run`'s per-query correctness, checked to cover the same test queries as `other`."""
    if not np.array_equal(run["query_ids"], other["query_ids"]):
        raise ValueError(
            f"{run['model']}/{run['task']}: {run['strategy']} and {other['strategy']} were evaluated on different "
            "test queries; a paired comparison needs the same ones"
        )
    return run["by_query"]


def _by_task(grouped: dict[tuple, list[dict]]) -> dict[tuple, dict[str, list[dict]]]:
    out: dict[tuple, dict[str, list[dict]]] = {}
    for (model, task, name), members in grouped.items():
        out.setdefault((model, task), {})[name] = members
    return out


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
