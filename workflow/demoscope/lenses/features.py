"""Per candidate x layer features, streamed from an activation store in bounded blocks.

With `skip_first_token` the moments (all-token and last-token) leave out each segment's first
token, under every mask: where a segment starts its sequence (causal, bidirectional, packed)
that token is the attention sink, whose massive activations otherwise dominate every moment
(docs/masks.md measures how much), and leaving it out under the other masks too keeps the
moments of every mask over the same tokens. The massive-activation lens always reads every
token: the sink is where massive activations live. `n_tokens` counts every token.
An empty segment (or one left empty) gives NaN features, never a zero or a crash.
"""

from __future__ import annotations

import sys

import polars as pl
from tqdm import tqdm

from demoscope.lenses.registry import STORE_LENSES
from demoscope.activations.store import ActivationStore

# Numeric features that enter the Spearman report; `top1_dim` and `massive_dims` are descriptive.
# `n_tokens` stays in the table but is no activation feature: it is the same at every layer and
# store, so it is tested once, in the controls lens (controls.py).
# The columns are the store lenses' (lenses.STORE_LENSES), in registry order.
FEATURES = tuple(name for lens in STORE_LENSES.values() for name in lens.features)


def candidate_features(tokens, threshold: float, ratio: float, skip_first_token: bool = False) -> dict:
    settings = {"threshold": threshold, "ratio": ratio, "skip_first_token": skip_first_token}
    row = {"n_tokens": len(tokens)}
    for lens in STORE_LENSES.values():
        row.update(lens.compute(tokens, settings))
    return row


def compute_features(
    store: ActivationStore, threshold: float = 100.0, ratio: float = 1000.0, block_tokens: int = 8192,
    skip_first_token: bool = False,
) -> pl.DataFrame:
    """Read one layer block at a time (never the whole store) and describe each segment in it.

    A store with several segments per candidate (the `query` mask: one per probe
    query) is averaged over each candidate's segments.
    """
    offsets = store.offsets
    per_candidate = int(store.attrs.get("segments_per_candidate", 1))
    rows = []
    for layer in tqdm(range(store.n_layers), desc="features", file=sys.stderr):
        for first, last in store.blocks(block_tokens):
            block = store.tokens(layer, first, last)
            base = offsets[first]
            for seg in range(first, last):
                tokens = block[offsets[seg] - base : offsets[seg + 1] - base]
                rows.append({"cand_id": seg // per_candidate, "layer": layer, **candidate_features(tokens, threshold, ratio, skip_first_token)})
    frame = pl.DataFrame(rows, schema_overrides={"massive_dims": pl.List(pl.Int64)})
    if per_candidate > 1:
        frame = average_segments(frame)
    return frame.sort("cand_id", "layer")


def average_segments(frame: pl.DataFrame) -> pl.DataFrame:
    """Mean of every numeric feature over a candidate's segments; the union of massive dims,
    and the dim of the segment with the largest top-1."""
    return frame.group_by("cand_id", "layer").agg(
        *[pl.col(name).mean() for name in ("n_tokens", *FEATURES)],
        pl.col("top1_dim").sort_by("top1").last(),
        pl.col("massive_dims").list.explode(keep_nulls=False, empty_as_null=False).unique().sort(),
    )
