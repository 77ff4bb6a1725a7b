"""The paper's figures, each drawn from the workflow's tables alone and saved as PNG and PDF."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

# Columns `strategy_accuracy_bars` needs of the strategies table (results/report/strategies.csv).
STRATEGY_COLUMNS = ("model", "task", "strategy", "mean_accuracy", "ci_low", "ci_high")
# Marks of the paired comparison with random (`paired` verdicts), above each compared bar.
DISTINGUISHABLE = "distinguishable from random"
VERDICT_MARKS = {DISTINGUISHABLE: "*", "not distinguishable": "ns", "underpowered": "?"}
VERDICT_KEY = (
    "dashed: random's mean\n* distinguishable from random (paired by test query,\n   BH-adjusted p < alpha)\n"
    "ns not distinguishable (10 points was detectable)\n? underpowered (10 points was not)"
)
NO_LABEL = "no label"  # how a generation task's demonstrations, which carry no label, are grouped


def save(fig, paths) -> None:
    """Write one figure to every path (the extension picks the format), then close it."""
    for path in paths:
        fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"CreationDate": None} if str(path).endswith(".pdf") else None)
    plt.close(fig)


def message(text: str, title: str, paths) -> None:
    """A figure that says why there is nothing to draw (e.g. every correlation is NaN)."""
    fig, ax = plt.subplots(figsize=(5.5, 2.5))
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    save(fig, paths)


def _panels(data: pl.DataFrame) -> list[tuple[str, str]]:
    return data.select("mask", "site").unique().sort("mask", "site").rows()


def _grid(n_panels: int, width: float, height: float, **options):
    """A figure of n panels, three to a row, each width x height inches; unused axes hidden."""
    columns = min(3, n_panels)
    rows = -(-n_panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns + 1.5, height * rows), squeeze=False, **options)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def _layered(spearman: pl.DataFrame, quality: str) -> pl.DataFrame:
    """The rows of one quality metric that have a layer (the controls lens has none)."""
    return spearman.filter((pl.col("quality") == quality) & pl.col("layer").is_not_null())


def rho_heatmap(spearman: pl.DataFrame, quality: str, title: str, paths, null_q95: float = float("nan")) -> None:
    """|rho| as layers x features, one panel per (mask, site), three panels to a row. Cells at or
    above the family's chance maximum (the null's 95th percentile, `null_q95`) are outlined, and
    the colour bar marks that level."""
    data = _layered(spearman, quality)
    if data.is_empty():
        message(f"No correlation with {quality} (a degenerate metric is not correlated).", title, paths)
        return
    panels = _panels(data)
    features = list(dict.fromkeys(data["feature"].to_list()))
    layers = sorted(data["layer"].unique().to_list())
    fig, axes = _grid(len(panels), 0.3 * len(features) + 1.2, 0.16 * len(layers) + 2.2)
    for ax, (mask, site) in zip(axes.flat, panels):
        part = data.filter((pl.col("mask") == mask) & (pl.col("site") == site))
        grid = np.full((len(layers), len(features)), np.nan)
        for feature, layer, rho in part.select("feature", "layer", "rho").iter_rows():
            grid[layers.index(layer), features.index(feature)] = abs(rho)
        image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis", vmin=0, vmax=1, origin="lower")
        if np.isfinite(null_q95):
            for row, column in zip(*np.nonzero(np.nan_to_num(grid) >= null_q95)):
                ax.add_patch(plt.Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.2))
        ax.set_xticks(range(len(features)), features, rotation=90, fontsize=7)
        ax.set_yticks(range(len(layers)), layers, fontsize=6)
        ax.set_ylabel("layer")
        ax.set_title(f"{mask} / {site}", fontsize=9)
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), label=f"|Spearman rho| with {quality}", shrink=0.6)
    chance = ""
    if np.isfinite(null_q95):
        bar.ax.axhline(null_q95, color="red", lw=2)
        chance = f"  (red: chance maximum of the family, null 95th percentile {null_q95:.2f})"
    fig.suptitle(title + chance, fontsize=10)
    save(fig, paths)


def rho_by_layer(
    spearman: pl.DataFrame, quality: str, bound: float, alpha: float, title: str, paths, null_q95: float = float("nan")
) -> None:
    """|rho| against layer depth, one line per feature, one panel per (mask, site); the study's
    bound as a dashed line, the family's chance maximum (the permutation null's 95th percentile
    of the largest |rho|) as a red band from 0 to it, tests with family-wise p < alpha as dots."""
    data = _layered(spearman, quality).sort("layer")
    if data.is_empty():
        message(f"No correlation with {quality} (a degenerate metric is not correlated).", title, paths)
        return
    panels = _panels(data)
    features = list(dict.fromkeys(data["feature"].to_list()))
    layers = data["layer"].to_list()
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(features), 1)))
    fig, axes = _grid(len(panels), 4.2, 3.2, sharey=True)
    for ax, (mask, site) in zip(axes.flat, panels):
        part = data.filter((pl.col("mask") == mask) & (pl.col("site") == site))
        for colour, feature in zip(colours, features):
            line = part.filter(pl.col("feature") == feature)
            layer, rho = line["layer"].to_numpy(), np.abs(line["rho"].to_numpy())
            ax.plot(layer, rho, color=colour, lw=1, label=feature)
            hit = np.nan_to_num(line["p_fwer"].to_numpy(), nan=1.0) < alpha
            ax.plot(layer[hit], rho[hit], "o", color=colour, ms=3)
        ax.axhline(bound, color="k", ls="--", lw=0.8, label=f"study bound {bound}")
        if np.isfinite(null_q95):
            ax.axhspan(0, null_q95, color="red", alpha=0.12, lw=0, label="chance (null 95% of max)")
            ax.axhline(null_q95, color="red", lw=1)
        if not part["rho"].is_finite().any():
            ax.text(0.5, 0.6, "every rho is NaN", ha="center", transform=ax.transAxes)
        ax.set_title(f"{mask} / {site}", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(min(layers) - 0.5, max(layers) + 0.5)
        ax.set_xlabel("layer")
        ax.set_ylabel(f"|rho| with {quality}")
        ax.set_ylim(0, 1)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, title="feature")
    chance = f"; red: chance max {null_q95:.2f}" if np.isfinite(null_q95) else ""
    fig.suptitle(f"{title}  (dashed: bound {bound}{chance}; dots: family-wise p < {alpha})", fontsize=10)
    fig.tight_layout()
    save(fig, paths)


def shown_labels(labels) -> np.ndarray:
    """Demonstration labels as text; generation tasks have none, shown as one group."""
    labels = np.asarray(labels).astype(str)
    return np.where(labels == "", NO_LABEL, labels)


def sae_lens(spearman: pl.DataFrame, quality: str, bound: float, title: str, paths) -> None:
    """|rho| by layer of each SAE feature against the best moment and the best massive-activation
    feature of the same store at each layer, one panel per store the SAE lens read: does the SAE
    see what the raw lenses miss?"""
    data = _layered(spearman, quality)
    panels = data.filter(pl.col("lens") == "sae").select("mask", "site").unique().sort("mask", "site").rows()
    if not panels:
        message("The SAE lens is off (sae.stores is empty) or has no SAE layer.", title, paths)
        return
    fig, axes = _grid(len(panels), 4.2, 3.2, sharey=True)
    colours = plt.get_cmap("tab10")
    for ax, (mask, site) in zip(axes.flat, panels):
        part = data.filter((pl.col("mask") == mask) & (pl.col("site") == site)).with_columns(
            pl.col("rho").abs().alias("abs_rho")
        )
        for lens, style in (("moments", "-"), ("massive", ":")):
            best = (
                part.filter((pl.col("lens") == lens) & pl.col("abs_rho").is_not_nan())
                .group_by("layer")
                .agg(pl.col("abs_rho").max())
                .sort("layer")
            )
            ax.plot(best["layer"], best["abs_rho"], style, color="grey", lw=1.2, label=f"best {lens} feature")
        sae = part.filter(pl.col("lens") == "sae")
        for i, feature in enumerate(sorted(sae["feature"].unique().to_list())):
            line = sae.filter(pl.col("feature") == feature).sort("layer")
            ax.plot(line["layer"], line["abs_rho"], "o-", color=colours(i), ms=5, lw=1, label=feature)
        ax.axhline(bound, color="k", ls="--", lw=0.8)
        ax.set_title(f"{mask} / {site}", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer")
        ax.set_ylabel(f"|rho| with {quality}")
        ax.set_ylim(0, 1)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.suptitle(f"{title}  (dashed: bound {bound})", fontsize=10)
    fig.tight_layout()
    save(fig, paths)


def strongest_scatter(x: np.ndarray, y: np.ndarray, labels, row: dict, title: str, paths) -> None:
    """The strongest feature (one layer, mask and site) against quality, one colour per
    demonstration label; `row` is its headline row (rho and interval go in the title)."""
    x, y, labels = np.asarray(x, dtype=float), np.asarray(y, dtype=float), shown_labels(labels)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for label in np.unique(labels):
        chosen = labels == label
        ax.scatter(x[chosen], y[chosen], s=14, alpha=0.75, label=label)
    ax.set_xlabel(f"{row['feature']} (layer {row['layer']}, {row['mask']} / {row['site']})")
    ax.set_ylabel(row["quality"])
    if np.all(x[np.isfinite(x)] > 0) and np.nanmax(x) / np.nanmin(x) > 100:
        ax.set_xscale("log")
    ax.legend(title="demo label", fontsize=7)
    ax.set_title(
        f"{title}\nrho = {row['rho']:.3f}  95% CI [{row['ci_low']:.3f}, {row['ci_high']:.3f}]  "
        f"n = {len(x)}\nfamily-wise p = {row['p_max']:.3g} over {row['tests']} tests (chance max "
        f"{row['null_max_q95']:.2f}): {row['verdict']}",
        fontsize=9,
    )
    save(fig, paths)


def massive_by_layer(features: pl.DataFrame, threshold: float, title: str, paths) -> None:
    """Top-1, top-2, top-3 and median activation magnitude per layer on a log scale (Sun et al.
    2024): the median over candidates as a line, the 10th-90th percentile as a band."""
    stats = features.group_by("layer").agg(
        *[
            pl.col(name).quantile(q, "linear").alias(f"{name}_{tag}")
            for name in ("top1", "top2", "top3", "median_abs")
            for q, tag in ((0.1, "lo"), (0.5, "mid"), (0.9, "hi"))
        ]
    ).sort("layer")
    layer = stats["layer"].to_numpy()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, label in (("top1", "top 1"), ("top2", "top 2"), ("top3", "top 3"), ("median_abs", "median")):
        line = ax.plot(layer, stats[f"{name}_mid"], marker="o", ms=3, label=label)[0]
        ax.fill_between(layer, stats[f"{name}_lo"], stats[f"{name}_hi"], color=line.get_color(), alpha=0.2)
    ax.axhline(threshold, color="k", ls="--", lw=0.8, label=f"massive threshold {threshold:g}")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel("|activation|")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    save(fig, paths)


def quality_by_label(quality: pl.DataFrame, metrics: list[str], title: str, paths) -> None:
    """Each quality metric over the candidates, split by demonstration label: a box per label
    with every candidate as a jittered dot."""
    shown = shown_labels(quality["label"].cast(pl.String).to_numpy())
    labels = sorted(set(shown))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 0.5, 3.6), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes[0], metrics):
        groups = [quality[metric].to_numpy()[shown == label] for label in labels]
        ax.boxplot(groups, tick_labels=labels, showfliers=False)
        for i, values in enumerate(groups, start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=8, alpha=0.6)
        ax.set_xlabel("demonstration label")
        ax.set_ylabel(metric)
    fig.suptitle(f"{title}  ({len(quality)} candidates)", fontsize=10)
    fig.tight_layout()
    save(fig, paths)


def strategy_accuracy_bars(table: pl.DataFrame, title: str, paths) -> None:
    """Mean test accuracy of each selection strategy with its interval, one panel per model x
    task. `table` has `STRATEGY_COLUMNS` (the strategies table of the selection stage); where it
    has `reference`, reference rows (the quality oracle) are drawn hatched and grey and labelled
    as references; where it has `verdict` (the paired comparison with random), random's mean is
    a dashed line and each compared bar carries its verdict's mark (`VERDICT_MARKS`), the
    distinguishable ones drawn in a darker colour."""
    missing = set(STRATEGY_COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"strategy table lacks columns {sorted(missing)}")
    panels = table.select("model", "task").unique().sort("model", "task").rows()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(max(3.5, 0.45 * table.height / len(panels) + 1.5) * len(panels) + 0.5, 4.2),
        squeeze=False, sharey=True,
    )
    for ax, (model, task) in zip(axes[0], panels):
        part = table.filter((pl.col("model") == model) & (pl.col("task") == task))
        mean = part["mean_accuracy"].to_numpy()
        error = np.clip(np.vstack([mean - part["ci_low"].to_numpy(), part["ci_high"].to_numpy() - mean]), 0, None)
        reference = part["reference"].to_numpy() if "reference" in part.columns else np.zeros(len(part), bool)
        names = [f"{name} (reference)" if ref else name for name, ref in zip(part["strategy"], reference)]
        verdicts = part["verdict"].to_list() if "verdict" in part.columns else [None] * len(part)
        colours = ["tab:orange" if v == DISTINGUISHABLE else "tab:blue" for v in verdicts]
        bars = ax.bar(range(len(part)), mean, yerr=error, capsize=3, color=colours, alpha=0.8)
        for bar, ref in zip(bars, reference):
            if ref:
                bar.set_color("0.6")
                bar.set_hatch("//")
        if "verdict" in part.columns:
            random = part.filter(pl.col("strategy") == "random")["mean_accuracy"]
            if len(random):
                ax.axhline(random[0], color="0.3", linestyle="--", linewidth=0.8)
            for x, (top, v) in enumerate(zip(part["ci_high"].to_numpy(), verdicts)):
                if v in VERDICT_MARKS:
                    ax.text(x, min(top, 1.0) + 0.02, VERDICT_MARKS[v], ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(part)), names, rotation=45, ha="right", fontsize=7)
        if len(panels) > 1:  # one panel: the title already names its model and task
            ax.set_title(f"{model} / {task}", fontsize=9)
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.1 if "verdict" in part.columns else 1)  # room for the marks above a full bar
    if "verdict" in table.columns:
        fig.text(0.01, 0.0, VERDICT_KEY, fontsize=7, ha="left", va="top")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save(fig, paths)


def reliability_by_queries(summary: pl.DataFrame, curve: pl.DataFrame, title: str, paths, target: float = 0.7) -> None:
    """Split-half reliability of each quality metric against the number of quality queries:
    measured (subsamples of the queries scored, with the 2.5-97.5% spread of the splits) and
    projected past them by the Spearman-Brown formula from the full estimate (dashed). A dotted
    line marks `target`: how many queries a metric needs to reach it."""
    fig, ax = plt.subplots(figsize=(5.8, 4.0))
    colours = plt.get_cmap("tab10")
    for i, metric in enumerate(summary["metric"].to_list()):
        line = curve.filter(pl.col("metric") == metric).sort("queries")
        if line.is_empty():
            continue
        queries = line["queries"].to_numpy()
        ax.plot(queries, line["reliability"], "o-", color=colours(i), ms=4, lw=1.2, label=metric)
        ax.fill_between(queries, line["reliability_low"], line["reliability_high"], color=colours(i), alpha=0.15, lw=0)
        full = summary.filter(pl.col("metric") == metric).row(0, named=True)
        if np.isfinite(full["reliability"]) and full["reliability"] > 0:
            ahead = full["queries"] * np.array([1, 2, 4, 8, 16])
            r = full["reliability"]
            factor = ahead / full["queries"]
            ax.plot(ahead, factor * r / (1 + (factor - 1) * r), "--", color=colours(i), lw=1)
    ax.axhline(target, color="k", ls=":", lw=0.8, label=f"reliability {target}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("quality queries per candidate")
    ax.set_ylabel("split-half reliability (Spearman-Brown)")
    ax.set_ylim(min(0.0, float(np.nanmin(curve["reliability_low"].to_numpy())) if curve.height else 0.0), 1)
    ax.legend(fontsize=7)
    ax.set_title(f"{title}\nsolid: measured; dashed: projected", fontsize=9)
    save(fig, paths)
