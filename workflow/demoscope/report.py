"""The Spearman table and the Markdown summary of a run."""

from __future__ import annotations

import polars as pl

from .correlate import correlate
from .features import FEATURES

KEYS = ["model", "task", "mask", "site"]


def spearman_table(parts: list[dict], metrics: list[str]) -> pl.DataFrame:
    """`parts`: dicts with model/task/mask/site plus `features` and `quality` frames."""
    tables = []
    for part in parts:
        table = correlate(part["features"], part["quality"], list(FEATURES), metrics)
        tables.append(table.with_columns(*[pl.lit(part[k]).alias(k) for k in KEYS]))
    return pl.concat(tables).select(KEYS + ["feature", "layer", "quality", "rho", "pvalue", "n"])


def _md_table(frame: pl.DataFrame, floats: int = 3) -> str:
    def cell(v):
        if isinstance(v, float):
            return "NaN" if v != v else f"{v:.{floats}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{floats}f}"
        return str(v)

    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([head, rule, *body])


def summary_markdown(spearman: pl.DataFrame, quality: dict[tuple[str, str], pl.DataFrame], bound: float) -> str:
    """Largest |rho| per model and task against the study's bound, NaN counts, and the quality side."""
    ranked = spearman.with_columns(pl.col("rho").abs().alias("abs_rho")).filter(pl.col("abs_rho").is_not_nan())
    best = (
        ranked.sort("abs_rho", descending=True)
        .group_by(["model", "task"], maintain_order=True)
        .first()
        .with_columns((pl.col("abs_rho") > bound).alias(f"above_{bound}"))
        .select(["model", "task", "abs_rho", "rho", "feature", "layer", "mask", "site", "quality", "pvalue", "n", f"above_{bound}"])
        .sort("model", "task")
    )
    nans = (
        spearman.group_by(["model", "task"])
        .agg(pl.len().alias("tests"), pl.col("rho").is_nan().sum().alias("nan_rho"))
        .sort("model", "task")
    )
    by_mask = (
        ranked.group_by(["model", "task", "mask", "site", "quality"])
        .agg(pl.col("abs_rho").max().alias("max_abs_rho"), pl.col("abs_rho").median().alias("median_abs_rho"))
        .sort("model", "task", "mask", "site", "quality")
    )
    dist, by_label = [], []
    for (model, task), q in sorted(quality.items()):
        acc = q["accuracy"]
        dist.append(
            {
                "model": model, "task": task, "candidates": len(q), "queries": int(q["n_queries"][0]),
                "mean": acc.mean(), "std": acc.std(), "min": acc.min(), "median": acc.median(), "max": acc.max(),
                "distinct": acc.n_unique(), "mean_gold_logprob": q["gold_logprob"].mean(),
            }
        )
        for (label,), part in q.group_by(["label"], maintain_order=True):
            by_label.append(
                {
                    "model": model, "task": task, "demo_label": label, "candidates": len(part),
                    "mean_accuracy": part["accuracy"].mean(), "mean_gold_logprob": part["gold_logprob"].mean(),
                }
            )
    by_label_frame = pl.DataFrame(by_label).sort("model", "task", "demo_label")
    return "\n\n".join(
        [
            "# demoscope summary",
            f"Spearman rho between each activation feature (per layer) and each candidate's 1-shot quality. "
            f"The study reports |rho| <= {bound} for every task and model.",
            "## Largest |rho| per model and task",
            _md_table(best),
            "## Largest |rho| per masking strategy and site",
            _md_table(by_mask),
            "## NaN correlations",
            "A NaN rho means one side was constant over the candidates (for example every candidate "
            "reached the same accuracy); it is reported as NaN, never as 0.",
            _md_table(nans),
            "## Quality distribution (1-shot accuracy over the quality queries)",
            _md_table(pl.DataFrame(dist)),
            "## Quality by demonstration label",
            "With one demonstration, its label shifts the prediction: quality can track the label.",
            _md_table(by_label_frame),
        ]
    ) + "\n"
