"""The records an SAE is trained on: a seeded draw from train, disjoint from the candidates.

The SAE lens describes each candidate by how well a dictionary learnt on *other* demonstrations
of the same task reconstructs it. The pool therefore excludes the candidates (every candidate's
reconstruction error is out of sample, none is favoured by having been trained on), and it
never sees a dev or test record (train only). The last `held_out` fraction of the draw is kept
out of training; the SAE's explained variance is measured on its tokens.
"""

from __future__ import annotations

import polars as pl

from demoscope.data.records import Record
from demoscope.data.sampling import balanced_sample
from demoscope.data.templates import Template
from demoscope.lm.tokens import encode_text

# Candidates use `seed`, quality queries seed+1, test queries seed+2 (prompts.py).
POOL_SEED_OFFSET = 3


def draw_pool(
    train: list[Record], candidate_ids: set[str], n: int, held_out: float, seed: int, template: Template, tokenizer
) -> pl.DataFrame:
    """`n` label-balanced train records that are not candidates, rendered as demonstrations;
    training records first, then the held-out ones (`held_out` column)."""
    records = balanced_sample(
        train, n, seed + POOL_SEED_OFFSET, exclude=set(candidate_ids), what="sae.pool (train records that are not candidates)"
    )
    n_held = int(round(held_out * n))
    if n_held < 1 or n_held >= n:
        raise ValueError(f"sae.held_out: {held_out} of a pool of {n} leaves no held-out or no training records")
    texts = [template.demonstration_text(r) for r in records]
    return pl.DataFrame(
        {
            "pool_id": list(range(n)),
            "record_id": [r.id for r in records],
            "label": [r.label for r in records],
            "demonstration": texts,
            "n_tokens": [len(encode_text(tokenizer, t, first=True)) for t in texts],
            # balanced_sample returns its draw in random order: the tail is a random held-out set.
            "held_out": [i >= n - n_held for i in range(n)],
        }
    )


def training_records(pool: pl.DataFrame) -> int:
    """How many leading records of the pool (and of its store) are for training; the rest are held out."""
    held = pool["held_out"].to_list()
    n_train = held.index(True) if True in held else len(held)
    if any(held[:n_train]) or not all(held[n_train:]):
        raise ValueError("the SAE pool table must list its training records first, then the held-out ones")
    return n_train
