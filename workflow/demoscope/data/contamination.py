"""Candidates that duplicate a test or quality query, by content: found, counted, kept out.

Two texts are the same content when their inputs are equal after lower-casing and collapsing
runs of whitespace (the answer is not compared: a candidate that shows the test question with
any answer gives the question away). A test query never appears among its own demonstrations:
`allowed` is the (test queries x candidates) mask every selector obeys, and `check_selection`
stops a select job whose table breaks it. `contamination_table` counts, per query set, the
candidates that duplicate one of its queries; `summary_section` renders those counts for the
summary.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

SPACE = re.compile(r"\s+")

COUNT_SCHEMA = {"set": pl.String, "queries": pl.Int64, "candidates": pl.Int64, "duplicate_candidates": pl.Int64,
                "duplicated_queries": pl.Int64}


def normalise(text: str) -> str:
    return SPACE.sub(" ", text).strip().lower()


def duplicates(candidate_inputs: list[str], query_inputs: list[str]) -> np.ndarray:
    """(queries, candidates) boolean: query q and candidate c have the same content."""
    where: dict[str, list[int]] = {}
    for c, text in enumerate(candidate_inputs):
        where.setdefault(normalise(text), []).append(c)
    out = np.zeros((len(query_inputs), len(candidate_inputs)), dtype=bool)
    for q, text in enumerate(query_inputs):
        out[q, where.get(normalise(text), [])] = True
    return out


def allowed(candidates: pl.DataFrame, queries: pl.DataFrame) -> np.ndarray:
    """(test queries x candidates): the candidates each test query may take as demonstrations."""
    return ~duplicates(candidates["input"].to_list(), queries["input"].to_list())


def check_selection(selection: pl.DataFrame, candidates: pl.DataFrame, queries: pl.DataFrame) -> None:
    """Raise when a test query is among its own demonstrations (a shared set, query_id -1,
    is every test query's)."""
    dup = duplicates(candidates["input"].to_list(), queries["input"].to_list())
    row_of = {int(c): i for i, c in enumerate(candidates["cand_id"].to_list())}
    q_of = {int(q): i for i, q in enumerate(queries["query_id"].to_list())}
    for row in selection.iter_rows(named=True):
        c = row_of[row["cand_id"]]
        qs = range(len(q_of)) if row["query_id"] == -1 else [q_of[row["query_id"]]]
        hit = [q for q in qs if dup[q, c]]
        if hit:
            ids = queries["query_id"].to_list()
            raise ValueError(
                f"contamination: candidate {row['cand_id']} duplicates test query {ids[hit[0]]} and was chosen "
                f"as one of its demonstrations"
            )


def contamination_table(candidates: pl.DataFrame, query_sets: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """One row per query set (`test`, `quality`): its size, the candidates, how many candidates
    duplicate one of its queries and how many of its queries have a duplicate candidate."""
    rows = []
    for name, queries in query_sets.items():
        dup = duplicates(candidates["input"].to_list(), queries["input"].to_list())
        rows.append((name, queries.height, candidates.height, int(dup.any(axis=0).sum()), int(dup.any(axis=1).sum())))
    return pl.DataFrame(rows, schema=COUNT_SCHEMA, orient="row")


def summary_section(tables: dict[tuple[str, str], pl.DataFrame]) -> tuple[str, str, pl.DataFrame | None]:
    """The summary's section (heading, text, table), as `report.to_markdown` takes them: per
    model and task, the candidates that duplicate a test or a quality query. `tables` maps
    (model, task) to its `prompts/contamination.parquet`."""
    parts = [
        table.select(pl.lit(model).alias("model"), pl.lit(task).alias("task"), pl.all())
        for (model, task), table in sorted(tables.items())
    ]
    table = pl.concat(parts) if parts else None
    total = 0 if table is None else int(table["duplicate_candidates"].sum())
    text = (
        f"{total} candidates (counted once per query set) duplicate a test or quality query by content "
        "(input lower-cased, whitespace collapsed). A test query never sees its own duplicate among its demonstrations: "
        "every strategy leaves such candidates out for that query."
    )
    return "Contamination", text, table
