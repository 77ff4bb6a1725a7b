"""The headline of a run: per model x task, a verdict a reader can trust, and the numbers behind it.

A task's family of tests is every feature x layer x store x usable quality metric it
correlates, the controls included (the `packed` store, a consistency check of `causal`, is not
in it). The headline row reports the largest |rho| among the activation lenses beside what the
largest would be by chance (the permutation max-T null over the same family), how reliable its
quality target is, and how large an effect the run could have detected:

- `p_max`: family-wise p-value of the largest activation |rho| (max-T, `maxnull.py`).
- `null_max_q95`: the 95th percentile of the family's largest |rho| under the null; the
  family-wise critical value at alpha = 0.05 is its (1 - alpha) quantile.
- `detectable_rho`: the smallest true |rho| one test of the family detects with `power` at that
  critical value (`power.py`); `candidates` is its n.
- `share_bounded`: the share of the family's defined activation tests whose |rho| < bound is
  established by TOST at alpha.
- `reliability`, `noise_ceiling`: of the headline's quality metric (`reliability.py`);
  `rho_disattenuated` = rho / sqrt(reliability).
- `verdict`, in this order: `degenerate quality` (no usable quality metric), `signal`
  (p_max < alpha), `bounded below the study's <bound>` (TOST bounds every activation test),
  `underpowered` (detectable |rho| above the bound, or undefined), `no signal detected`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from demoscope.stats.maxnull import family_pvalue
from demoscope.stats.power import detectable_rho

KEYS = ["model", "task"]
CONTROLS = "controls"


def verdict(usable: bool, p_max: float, alpha: float, share_bounded: float, detectable: float, bound: float) -> str:
    if not usable:
        return "degenerate quality"
    if p_max < alpha:
        return "signal"
    if share_bounded == 1.0:
        return f"bounded below the study's {bound:g}"
    if not np.isfinite(detectable) or detectable > bound:
        return "underpowered"
    return "no signal detected"


VERDICT_SENTENCES = {
    "signal": "the strongest activation feature correlates with quality more than the largest of the same "
              "family of tests does by chance (family-wise p below alpha).",
    "no signal detected": "no activation feature beats the family's chance maximum, and the run could have "
                          "detected a true |rho| of `detectable_rho` or more with the stated power.",
    "bounded": "every activation test's |rho| is shown to lie below the study's bound (two one-sided tests at "
               "alpha): an affirmative negative result.",
    "underpowered": "no activation feature beats the family's chance maximum, but the run was too small to "
                    "detect a true |rho| at the study's bound: it cannot tell signal from its absence.",
    "degenerate quality": "every quality metric was degenerate (fewer than 3 distinct values, or one value held "
                          "by most candidates), so nothing was correlated.",
}


def sentence(verdict_text: str) -> str:
    key = "bounded" if verdict_text.startswith("bounded") else verdict_text
    return VERDICT_SENTENCES[key]


def _strongest(table: pl.DataFrame, column: str) -> pl.DataFrame:
    """The row with the largest finite |column| per model and task."""
    return (
        table.filter(pl.col(column).is_finite())
        .sort(pl.col(column).abs(), descending=True, maintain_order=True)
        .group_by(KEYS, maintain_order=True)
        .first()
    )


def headline(
    table: pl.DataFrame,
    nulls: dict[tuple[str, str], np.ndarray],
    reliability: pl.DataFrame,
    candidates: dict[tuple[str, str], int],
    bound: float,
    alpha: float,
    power: float = 0.8,
) -> pl.DataFrame:
    """One row per model x task. `table`: the run's rho rows with `in_family`, `p_fwer`,
    `bounded` and `lens`; `nulls`: per model and task, the family's largest |rho| per
    permutation; `reliability`: model, task, metric, reliability, noise_ceiling, degenerate;
    `candidates`: n per model and task."""
    family = table.filter(pl.col("in_family"))
    activations = family.filter(pl.col("lens") != CONTROLS)
    where = ["feature", "layer", "lens", "mask", "site", "quality"]
    rows = []
    for model, task in sorted(candidates):
        n = candidates[(model, task)]
        own = reliability.filter((pl.col("model") == model) & (pl.col("task") == task))
        usable = own.filter(pl.col("degenerate").is_null())["metric"].to_list()
        tests = family.filter((pl.col("model") == model) & (pl.col("task") == task))
        acts = activations.filter((pl.col("model") == model) & (pl.col("task") == task))
        null = np.asarray(nulls.get((model, task), np.array([])), dtype=float)
        null = null[np.isfinite(null)]
        q95 = float(np.quantile(null, 0.95)) if null.size else np.nan
        critical = float(np.quantile(null, 1 - alpha)) if null.size else np.nan
        detectable = detectable_rho(critical, n, power) if np.isfinite(critical) else np.nan
        defined = acts.filter(pl.col("rho").is_finite())
        share = float(defined["bounded"].mean()) if defined.height else np.nan
        row = {
            "model": model, "task": task, "candidates": n,
            "tests": tests.height, "defined": int(tests["rho"].is_finite().sum()),
            "significant": int((tests["padj"] < alpha).sum()), "fwer_significant": int((tests["p_fwer"] < alpha).sum()),
            "usable_metrics": ",".join(usable),
            "degenerate_metrics": ",".join(
                f"{m} ({r})" for m, r in own.filter(pl.col("degenerate").is_not_null()).select("metric", "degenerate").iter_rows()
            ),
            "null_max_median": float(np.median(null)) if null.size else np.nan,
            "null_max_q95": q95, "detectable_rho": detectable, "share_bounded": share,
        }
        best = _strongest(acts, "rho")
        if best.height:
            b = best.row(0, named=True)
            rel = own.filter(pl.col("metric") == b["quality"])
            reliability_value = float(rel["reliability"][0]) if rel.height else np.nan
            row.update({
                "max_abs_rho": abs(b["rho"]), "rho": b["rho"], "ci_low": b["ci_low"], "ci_high": b["ci_high"],
                "pvalue": b["pvalue"], "padj": b["padj"], **{c: b[c] for c in where},
                "p_max": float(family_pvalue(abs(b["rho"]), null)) if null.size else np.nan,
                "reliability": reliability_value,
                "noise_ceiling": float(np.sqrt(max(reliability_value, 0.0))) if np.isfinite(reliability_value) else np.nan,
                "rho_disattenuated": b["rho"] / np.sqrt(reliability_value) if reliability_value > 0 else np.nan,
            })
        control = _strongest(tests.filter(pl.col("lens") == CONTROLS), "rho")
        if control.height:
            c = control.row(0, named=True)
            row.update({"best_control": c["feature"], "best_control_quality": c["quality"],
                        "best_control_rho": c["rho"], "best_control_p_fwer": c["p_fwer"]})
        for metric in own["metric"].to_list():
            value = own.filter(pl.col("metric") == metric)["reliability"][0]
            row[f"reliability_{metric}"] = value
        row["verdict"] = verdict(bool(usable) and best.height > 0, row.get("p_max", np.nan), alpha, share,
                                 detectable, bound)
        rows.append(row)
    out = pl.DataFrame(rows, infer_schema_length=None).with_columns(pl.lit(bound).alias("bound"))
    if "partial_rho" in table.columns and family.height:
        partial = _strongest(activations, "partial_rho").select(
            *KEYS,
            pl.col("partial_rho").abs().alias("max_abs_partial_rho"),
            "partial_rho", "partial_pvalue", "partial_padj",
            *[pl.col(c).alias(f"partial_{c}") for c in where],
            *[c for c in ("controls",) if c in table.columns],
        )
        out = out.join(partial, on=KEYS, how="left")
    first = ["model", "task", "verdict", "max_abs_rho", "p_max", "null_max_q95", "detectable_rho", "share_bounded",
             "reliability", "noise_ceiling", "rho_disattenuated"]
    present = [c for c in first if c in out.columns]
    return out.select(present + [c for c in out.columns if c not in present]).sort(KEYS)
