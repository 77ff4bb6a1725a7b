"""The records the task-vector and attention lenses draw from train (the task-vector pool, the
attention lens's calibration records): model-free, so the jobs that draw them never import torch."""

from __future__ import annotations

import polars as pl

from demoscope.data.records import Record
from demoscope.data.sampling import balanced_sample
from demoscope.data.templates import Template

# Candidates use `seed`, quality queries seed+1, test queries seed+2, the SAE pool seed+3,
# CondAcc's prompts seed+4.
POOL_SEED_OFFSET = 5


def draw_pool(train: list[Record], candidate_ids: set[str], n: int, seed: int, template: Template) -> pl.DataFrame:
    """`n` label-balanced train records that are not candidates, rendered as demonstrations."""
    records = balanced_sample(
        train, n, seed + POOL_SEED_OFFSET, exclude=set(candidate_ids),
        what="task_vector.pool (train records that are not candidates)",
    )
    return pl.DataFrame(
        {
            "pool_id": list(range(len(records))),
            "record_id": [r.id for r in records],
            "label": [r.label for r in records],
            "demonstration": [template.demonstration_text(r) for r in records],
        }
    )


# Candidates use `seed`, quality queries seed+1, test queries seed+2, the SAE pool seed+3,
# CondAcc seed+4, the task-vector pool seed+5, the calibration records seed+7 and seed+8 (seed+6
# drew the lens's own probe queries before build_prompts wrote probe queries of its own).
CALIBRATION_SEED_OFFSET = 7


def draw_records(train: list[Record], exclude: set[str], n: int, seed: int, offset: int, what: str,
                 template: Template, query: bool) -> pl.DataFrame:
    """`n` label-balanced train records not in `exclude` (record ids), rendered as queries or
    as demonstrations."""
    records = balanced_sample(train, n, seed + offset, exclude=set(exclude), what=what)
    return pl.DataFrame(
        {
            "record_id": [r.id for r in records],
            "label": [r.label for r in records],
            "answer": [r.answer for r in records],
            "text": [template.query_text(r) if query else template.demonstration_text(r) for r in records],
        }
    )


def content_ids(records: list[Record], table: pl.DataFrame) -> set[str]:
    """Ids of the train records equal in content to the rows of a prompt table (its `input`,
    `answer`): quality queries drawn from dev may repeat train records under other ids."""
    keys = set(zip(table["input"].to_list(), table["answer"].to_list()))
    return {r.id for r in records if (r.input, r.answer) in keys}
