"""The run's Spearman table and its summary, as Markdown and as a page for the report."""

from __future__ import annotations

import html
import re

import numpy as np
import polars as pl

from demoscope import paths
from demoscope.stats.fdr import with_adjusted
from demoscope.stats.headline import sentence
from demoscope.lenses.registry import lens_of
from demoscope.stats.maxnull import family_pvalue
from demoscope.stats.power import tost_pvalue

KEYS = ["model", "task", "mask", "site"]


# A store that repeats another by construction: a consistency check, never a second set of tests.
CONSISTENCY_CHECKS = {"packed": "causal"}


def spearman_table(
    parts: list[tuple[dict, pl.DataFrame]], nulls: dict[tuple[str, str], np.ndarray], bound: float, alpha: float
) -> pl.DataFrame:
    """The stores' rho rows, each tagged with its model/task/mask/site and the feature's lens
    (moments, massive, sae, controls). `in_family`: the row is one of its model and task's
    family of tests (every row but the consistency-check stores'). Over the family: `padj`,
    Benjamini-Hochberg over every family test of the run (and `partial_padj` for the partial
    rho); `p_fwer`, the max-T family-wise p-value of the row's |rho| against its model and
    task's null (`nulls`: the family's largest |rho| per permutation); `p_tost` and `bounded`,
    whether |rho| < bound is established at alpha (`power.tost_pvalue`)."""
    tables = [rows.with_columns(*[pl.lit(keys.get(k), pl.String).alias(k) for k in KEYS]) for keys, rows in parts]
    table = pl.concat(tables, how="vertical_relaxed").sort(KEYS + ["quality", "feature", "layer"], nulls_last=True)
    lenses = {feature: lens_of(feature) for feature in table["feature"].unique().to_list()}
    table = table.with_columns(
        pl.col("feature").replace_strict(lenses, return_dtype=pl.String).alias("lens"),
        (~pl.col("mask").is_in(list(CONSISTENCY_CHECKS)).fill_null(False)).alias("in_family"),
    )
    p_fwer = np.full(table.height, np.nan)
    model, task, rho = table["model"].to_numpy(), table["task"].to_numpy(), table["rho"].to_numpy()
    for (m, t), null in nulls.items():
        rows = (model == m) & (task == t)
        p_fwer[rows] = family_pvalue(rho[rows], null)
    p_tost = tost_pvalue(rho, table["n"].to_numpy(), bound)
    table = table.with_columns(
        pl.Series("p_fwer", p_fwer), pl.Series("p_tost", p_tost), pl.Series("bounded", p_tost < alpha)
    ).with_columns(
        *[pl.when(pl.col("in_family")).then(pl.col(c)).otherwise(None).alias(c) for c in ("p_fwer", "p_tost", "bounded")]
    )
    family, checks = table.filter(pl.col("in_family")), table.filter(~pl.col("in_family"))
    family = with_adjusted(with_adjusted(family, "pvalue", "padj"), "partial_pvalue", "partial_padj")
    checks = checks.with_columns(pl.lit(None, pl.Float64).alias("padj"), pl.lit(None, pl.Float64).alias("partial_padj"))
    table = pl.concat([family, checks.select(family.columns)]).sort(KEYS + ["quality", "feature", "layer"], nulls_last=True)
    first = KEYS + ["lens", "feature", "layer", "quality", "rho", "ci_low", "ci_high", "pvalue", "padj", "p_fwer",
                    "p_tost", "bounded", "in_family", "n"]
    return table.select(first + [c for c in table.columns if c not in first])


def consistency_section(table: pl.DataFrame) -> tuple[str, str, pl.DataFrame | None]:
    """For each consistency-check store, its largest |rho| difference from the store it repeats."""
    heading = "Consistency checks"
    rows = []
    for check, reference in CONSISTENCY_CHECKS.items():
        mine = table.filter(pl.col("mask") == check)
        if mine.is_empty():
            continue
        keys = ["model", "task", "site", "feature", "layer", "quality"]
        joined = mine.join(table.filter(pl.col("mask") == reference), on=keys, suffix="_reference", nulls_equal=True)
        diff = (joined["rho"] - joined["rho_reference"]).abs()
        rows.append({"store": check, "reference": reference, "pairs": joined.height,
                     "max_abs_rho_difference": float(diff.max()) if joined.height else float("nan")})
    if not rows:
        return heading, "No consistency-check store (`packed`) was dumped.", None
    text = ("`packed` runs every candidate in one sequence with block-diagonal attention: it must equal `causal`. "
            "Its rows are kept in `spearman.csv` (`in_family` false) but are not tests of the family; the largest "
            "difference of its rho from `causal`'s says whether packing changed anything.")
    return heading, text, pl.DataFrame(rows)


def _cell(value, digits: int = 3) -> str:
    if isinstance(value, float):
        if value != value:
            return "NaN"
        return f"{value:.{digits}g}" if 0 < abs(value) < 1e-3 else f"{value:.{digits}f}"
    return str(value)


def summary_sections(
    spearman: pl.DataFrame, top: pl.DataFrame, quality: dict[tuple[str, str], pl.DataFrame], alpha: float,
    reliability: pl.DataFrame | None = None,
) -> list[tuple[str, str, pl.DataFrame | None]]:
    """(heading, text, table) for each part of the summary; `top` is `headline.headline(...)`."""
    bound = top["bound"][0]
    verdict_columns = [
        "model", "task", "verdict", "max_abs_rho", "rho", "feature", "layer", "lens", "mask", "site", "quality",
        "p_max", "null_max_q95", "detectable_rho", "share_bounded", "candidates", "reliability", "noise_ceiling",
        "rho_disattenuated", "best_control", "best_control_rho", "best_control_p_fwer", "tests",
        "degenerate_metrics",
    ]
    best = top.select([c for c in verdict_columns if c in top.columns])
    seen = sorted(set(top["verdict"].to_list()))
    verdict_text = (
        "Per model and task, the verdict on the study's question, then the numbers behind it. `max_abs_rho` is the "
        "largest |Spearman rho| between an activation feature (any lens, layer, store) and a quality metric over "
        f"the candidates. Alone it means little: a family of `tests` correlations has a large maximum by chance. "
        "`null_max_q95` is the 95th percentile of that maximum when quality is shuffled over the candidates "
        "(the same shuffles for every test of the family), and `p_max` is the family-wise p-value of "
        f"`max_abs_rho` against it. `detectable_rho` is the smallest true |rho| one test detects with the stated "
        "power at the family-wise threshold; `share_bounded` the share of activation tests whose |rho| is shown to "
        f"be below {bound} (two one-sided tests at alpha = {alpha}). `reliability` is the split-half reliability of "
        "the headline's quality metric; no feature can correlate with it beyond `noise_ceiling` = "
        "sqrt(reliability), and `rho_disattenuated` = rho / sqrt(reliability) is the correlation with an error-free "
        "quality. `best_control` is the strongest cheap, non-activation signal (controls lens), with its "
        "family-wise p-value: activations matter only if they add to it. Degenerate quality metrics are listed, "
        "not correlated. What each verdict seen here means: "
        + " ".join(f"**{v}**: {sentence(v)}" for v in seen)
    )
    partial_columns = ["model", "task", "max_abs_partial_rho", "partial_rho", "partial_padj", "partial_feature",
                       "partial_layer", "partial_mask", "partial_site", "partial_quality", "controls"]
    partial = top.select([c for c in partial_columns if c in top.columns])
    family = spearman.filter(pl.col("in_family"))
    ranked = family.with_columns(pl.col("rho").abs().alias("abs_rho")).filter(pl.col("abs_rho").is_not_nan())
    by_mask = (
        ranked.filter(pl.col("lens") != "controls")
        .group_by(["model", "task", "mask", "site", "quality"])
        .agg(
            pl.col("abs_rho").max().alias("max_abs_rho"),
            pl.col("abs_rho").median().alias("median_abs_rho"),
            pl.col("p_fwer").min().alias("min_p_fwer"),
            (pl.col("padj") < alpha).sum().alias("significant"),
        )
        .sort("model", "task", "mask", "site", "quality")
    )
    nans = (
        spearman.group_by(["model", "task"])
        .agg(pl.len().alias("tests"), pl.col("rho").is_nan().sum().alias("nan_rho"))
        .sort("model", "task")
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
                    "model": model, "task": task, "demo_label": label or "(none)", "candidates": len(part),
                    "mean_accuracy": part["accuracy"].mean(), "mean_gold_logprob": part["gold_logprob"].mean(),
                }
            )
    sections = [
        ("Verdict per model and task", verdict_text, best),
    ]
    if reliability is not None and not reliability.is_empty():
        sections.append((
            "Reliability of quality",
            "Quality is a measurement with noise: each candidate's score is a mean over a few queries. Split-half "
            "reliability correlates the candidates' means on two random label-balanced halves of the queries and "
            "steps it up to the full count (Spearman-Brown); `reliability` is its mean over many splits, with the "
            "spread of those splits (`reliability_low`..`reliability_high`, 2.5-97.5%). `noise_ceiling` = "
            "sqrt(reliability) is the largest correlation any feature can have with the measured quality. "
            "`degenerate` says why a metric was not correlated. The reliability figure shows how it grows with the "
            "number of queries.",
            reliability.sort("model", "task", "metric"),
        ))
    sections += [
        (
            "Largest |partial rho| per model and task",
            "Partial Spearman rho of the activation features holding the demonstration's token count (and, for "
            "classification, its label) fixed: the Pearson correlation of the rank residuals after regressing out "
            "the covariates' ranks (label as indicators).",
            partial,
        ),
        (
            "Largest |rho| per masking strategy and site",
            "`min_p_fwer`: the smallest family-wise p-value among the store's tests.",
            by_mask,
        ),
        (
            "NaN correlations",
            "A NaN rho means one side was constant over the candidates (for example every candidate "
            "reached the same accuracy); it is reported as NaN, never as 0.",
            nans,
        ),
        ("Quality distribution (1-shot accuracy over the quality queries)", "", pl.DataFrame(dist)),
        (
            "Quality by demonstration label",
            "With one demonstration, its label shifts the prediction: quality can track the label.",
            pl.DataFrame(by_label).sort("model", "task", "demo_label"),
        ),
    ]
    return sections


def lens_section(spearman: pl.DataFrame, alpha: float) -> tuple[str, str, pl.DataFrame]:
    """The largest |rho| of each lens per model, task and quality metric, over all its tests and
    over the layers the SAE lens covers, so that the lenses meet on the same layers."""
    spearman = spearman.filter(pl.col("in_family"))
    sae_layers = spearman.filter(pl.col("lens") == "sae")["layer"].unique().to_list()
    ranked = spearman.with_columns(pl.col("rho").abs().alias("abs_rho")).filter(pl.col("abs_rho").is_not_nan())
    keys = ["model", "task", "lens", "quality"]
    best = (
        ranked.sort("abs_rho", descending=True, maintain_order=True)
        .group_by(keys, maintain_order=True)
        .agg(
            pl.col("abs_rho").first().alias("max_abs_rho"),
            pl.col("feature").first(),
            pl.col("layer").first(),
            pl.col("mask").first(),
            pl.col("site").first(),
            pl.col("p_fwer").first(),
            pl.col("abs_rho").median().alias("median_abs_rho"),
            pl.len().alias("defined"),
            (pl.col("padj") < alpha).sum().alias("significant"),
            pl.col("bounded").mean().alias("share_bounded"),
        )
    )
    same = (
        ranked.filter(pl.col("layer").is_in(sae_layers))
        .group_by(keys)
        .agg(pl.col("abs_rho").max().alias("max_abs_rho_sae_layers"))
    )
    table = best.join(same, on=keys, how="left").sort(keys)
    text = (
        "The largest |rho| of each lens (moments; massive activations; the sparse autoencoder; the task vector "
        "and the query-conditioned attention, docs/lenses.md; the controls: "
        "token count, label, the demonstration's own log-likelihood, zero-shot gold probability, similarity to "
        "the quality queries), with where it came from and its family-wise p-value `p_fwer` against the whole "
        "family's chance maximum; `defined` counts its tests with a defined rho, `significant` those with padj < "
        f"{alpha}, `share_bounded` the share shown below the bound. An activation lens adds something only if it "
        "beats the controls. A lens with more tests has more chances at a large maximum: `max_abs_rho_sae_layers` "
        f"is the same maximum over the layers the SAE lens covers ({', '.join(map(str, sorted(sae_layers))) or 'none'}) "
        "and the stores of every lens."
    )
    return "Largest |rho| per lens", text, table


def sae_quality_section(quality: pl.DataFrame) -> tuple[str, str, pl.DataFrame | None]:
    """Each SAE's quality next to its correlations: a weak SAE's features say little."""
    text = (
        "Each layer's SAE: dictionary size `d_sae`, active latents `k`; the explained variance of the "
        "held-out pool tokens and the fraction of latents that fire on no training token (from training; "
        "NaN for published weights that do not carry them); and, on the tokens of the store the lens read, "
        "the explained variance, mean L0 (latents > 0 per token) and the fraction of latents that never "
        "fire. Explained variance is 1 - sum |x - x_hat|^2 / sum |x - mean|^2 over tokens. "
        "`first_token_variance_share` is the share of that variance on each record's first token, the "
        "attention sink where massive activations sit: when `sae.skip_first` leaves those tokens out "
        "(the default) the explained variance is about the other tokens only; with them in, a large share "
        "means the figure mostly says how well the SAE copies a few massive values. "
        "`top_tokens_variance_share` is the share on the 1% of the lens's tokens that deviate most: large where "
        "a few tokens carry massive activations, and then so is the explained variance."
    )
    if quality.is_empty():
        return "SAE quality", "The SAE lens is off (`sae.stores` is empty).", None
    return "SAE quality", text, quality.sort("model", "task", "mask", "site", "layer")


def to_markdown(sections, title: str = "demoscope summary") -> str:
    parts = [f"# {title}"]
    for heading, text, table in sections:
        parts.append(f"## {heading}")
        if text:
            parts.append(text)
        if table is not None:
            head = "| " + " | ".join(table.columns) + " |"
            rule = "|" + "---|" * len(table.columns)
            body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.iter_rows()]
            parts.append("\n".join([head, rule, *body]))
    return "\n\n".join(parts) + "\n"


def to_html(sections, title: str = "demoscope summary") -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:1.5em}}"
        "table{border-collapse:collapse;font-size:13px;margin-bottom:1.5em}"
        "th,td{border:1px solid #bbb;padding:2px 6px;text-align:right}th{background:#eee}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for heading, text, table in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if text:
            parts.append("<p>" + re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text)) + "</p>")
        if table is not None:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in table.iter_rows()
            )
            parts.append(f"<table><tr>{head}</tr>{rows}</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def task_section(task_spearman: pl.DataFrame | None, top: pl.DataFrame) -> tuple[str, str, pl.DataFrame | None]:
    """Per model x task, the task side's largest |rho| beside the quality side's headline."""
    heading = "Task performance"
    if task_spearman is None or task_spearman.is_empty():
        return heading, "No task has test queries (`sizes.test_queries`), so the task side was not run.", None
    finite = task_spearman.filter(pl.col("rho").is_finite())
    best = (
        finite.sort(pl.col("rho").abs(), descending=True, maintain_order=True)
        .group_by(["model", "task"], maintain_order=True)
        .first()
        .select(
            "model", "task", pl.col("rho").abs().alias("task_max_abs_rho"), pl.col("rho").alias("task_rho"),
            pl.col("pvalue").alias("task_pvalue"), pl.col("feature").alias("task_feature"),
            pl.col("layer").alias("task_layer"), pl.col("mask").alias("task_mask"), pl.col("site").alias("task_site"),
            pl.col("metric").alias("task_metric"), pl.col("n").alias("sets"),
            # the task side's power over so few sets (taskcorr), where the table has it
            *[pl.col(c) for c in ("detectable_rho", "underpowered") if c in task_spearman.columns],
        )
    )
    counts = task_spearman.group_by(["model", "task"]).agg(
        pl.len().alias("task_tests"), pl.col("rho").is_nan().sum().alias("task_nan")
    )
    quality = top.select("model", "task", pl.col("max_abs_rho").alias("quality_max_abs_rho"),
                         pl.col("feature").alias("quality_feature"), pl.col("layer").alias("quality_layer"))
    table = counts.join(best, on=["model", "task"], how="left").join(quality, on=["model", "task"], how="left")
    text = (
        "Spearman rho over random k-shot sets between each set's mean feature value (over its demonstrations) and "
        "the set's accuracy (and mean gold log-prob) on the test queries, per feature, layer, mask and site; beside "
        "it the largest |rho| of the quality side (1-shot quality over candidates). `task_nan` counts undefined "
        "rho (a constant side, e.g. every set equally accurate). `underpowered`: over this many sets, |rho| up to "
        "`detectable_rho` (above 0.5) could be missed 1 time in 5, so a small or large task_rho there is not "
        f"evidence either way. Full table: `{paths.report_file('task_spearman.csv')}`."
    )
    return heading, text, table.sort("model", "task")


def skipped_section(skipped: dict[tuple[str, str], pl.DataFrame]) -> tuple[str, str, pl.DataFrame]:
    """How many records each task left out under `bad_records: skip`, by split (0 rows when none)."""
    rows = [
        {"model": model, "task": task, "split": split, "skipped": int((table["split"].cast(pl.String) == split).sum())}
        for (model, task), table in sorted(skipped.items())
        for split in ("train", "dev", "test")
    ]
    total = sum(r["skipped"] for r in rows)
    text = (
        f"{total} records were left out under `bad_records: skip`; each one, with its file, line and reason, "
        f"is in `{paths.prompts('skipped', '<model>', '<task>')}` and the build_prompts log."
    )
    return "Skipped records", text, pl.DataFrame(rows).filter(pl.col("skipped") > 0) if total else None
