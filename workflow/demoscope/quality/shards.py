"""Quality scoring split by candidates: which rows a score_quality job scores, and the merge.

Each candidate's one-shot quality is its own (its prompts hold no other candidate), so the
candidates can be scored in any number of jobs and concatenated. The default run splits
SST-2's 300 x 40 scoring across both cores (`compute.quality_shards`): one job of 12 minutes
was the run's critical path.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def shard_rows(table: pl.DataFrame, shard: int, shards: int) -> pl.DataFrame:
    """The `shard`-th of `shards` contiguous, near-equal blocks of `table`'s rows (in order, so
    concatenating the shards in shard order gives the table back)."""
    if not 0 <= shard < shards:
        raise ValueError(f"quality shard {shard} is outside 0..{shards - 1}")
    if shards > len(table):
        raise ValueError(
            f"compute.quality_shards is {shards} but the task has only {len(table)} candidates: "
            "every shard needs at least one"
        )
    bounds = np.linspace(0, len(table), shards + 1).round().astype(int)
    return table.slice(bounds[shard], bounds[shard + 1] - bounds[shard])


def merge_shards(tables: list[pl.DataFrame]) -> pl.DataFrame:
    """The shards' tables, in shard order, as one."""
    if not tables:
        raise ValueError("merge_quality: no quality shards to merge")
    return pl.concat(tables, how="vertical")
