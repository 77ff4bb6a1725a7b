"""Per candidate x layer features, streamed from an activation store in bounded blocks."""

from __future__ import annotations

import sys

import polars as pl
from tqdm import tqdm

from .massive import MASSIVE, massive_features
from .moments import MOMENTS, token_moments
from .store import ActivationStore

# Numeric features that enter the Spearman report; `top1_dim` and `massive_dims` are descriptive.
FEATURES = (
    ("n_tokens",) + MOMENTS + tuple(f"last_{m}" for m in MOMENTS) + MASSIVE
)


def candidate_features(tokens, threshold: float, ratio: float) -> dict:
    return {"n_tokens": len(tokens), **token_moments(tokens), **massive_features(tokens, threshold, ratio)}


def compute_features(
    store: ActivationStore, threshold: float = 100.0, ratio: float = 1000.0, block_tokens: int = 8192
) -> pl.DataFrame:
    """Read one layer block at a time (never the whole store) and describe each candidate in it."""
    offsets = store.offsets
    rows = []
    for layer in tqdm(range(store.n_layers), desc="features", file=sys.stderr):
        for first, last in store.blocks(block_tokens):
            block = store.tokens(layer, first, last)
            base = offsets[first]
            for cand in range(first, last):
                tokens = block[offsets[cand] - base : offsets[cand + 1] - base]
                rows.append({"cand_id": cand, "layer": layer, **candidate_features(tokens, threshold, ratio)})
    return pl.DataFrame(rows, schema_overrides={"massive_dims": pl.List(pl.Int64)}).sort("cand_id", "layer")
