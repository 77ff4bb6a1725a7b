"""Figures drawn from the report tables alone."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402


def rho_heatmap(spearman: pl.DataFrame, quality: str, title: str, path: str) -> None:
    """|rho| as layers x features, one panel per (mask, site)."""
    data = spearman.filter(pl.col("quality") == quality)
    panels = data.select("mask", "site").unique().sort("mask", "site").rows()
    features = list(dict.fromkeys(data["feature"].to_list()))
    layers = sorted(data["layer"].unique().to_list())
    fig, axes = plt.subplots(
        1, len(panels), figsize=(0.45 * len(features) * len(panels) + 2, 0.22 * len(layers) + 2.5), squeeze=False
    )
    for ax, (mask, site) in zip(axes[0], panels):
        part = data.filter((pl.col("mask") == mask) & (pl.col("site") == site))
        grid = np.full((len(layers), len(features)), np.nan)
        for feature, layer, rho in part.select("feature", "layer", "rho").iter_rows():
            grid[layers.index(layer), features.index(feature)] = abs(rho)
        image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis", vmin=0, vmax=1, origin="lower")
        ax.set_xticks(range(len(features)), features, rotation=90, fontsize=7)
        ax.set_yticks(range(len(layers)), layers, fontsize=6)
        ax.set_xlabel("feature")
        ax.set_ylabel("layer")
        ax.set_title(f"{mask} / {site}", fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), label=f"|Spearman rho| with {quality}")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
