"""Sample the candidate pool and the query sets of a task and render their text."""

from __future__ import annotations

import polars as pl

from demoscope.data.records import Record
from demoscope.data.sampling import balanced_sample
from demoscope.data.templates import Template
from demoscope.lm.tokens import encode_text

# Probe queries drawn per task unless `sizes.probe_queries` says otherwise (the schema's default).
PROBE_QUERIES = 4


def _table(records: list[Record], text: str, texts: list[str], tokenizer, id_name: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            id_name: list(range(len(records))),
            "record_id": [r.id for r in records],
            "input": [r.input for r in records],
            "answer": [r.answer for r in records],
            "label": [r.label for r in records],
            "options": [list(r.options) for r in records],
            "gold_index": [r.options.index(r.answer) if r.options else -1 for r in records],
            text: texts,
            "n_tokens": [len(encode_text(tokenizer, t, first=True)) for t in texts],
        },
        schema_overrides={"options": pl.List(pl.String)},
    )


def build_prompt_tables(
    splits: dict[str, list[Record]], template: Template, sizes: dict, seed: int, tokenizer, key: str = "sizes"
) -> dict[str, pl.DataFrame]:
    """Candidates come from train, quality queries from dev, test queries from test, and probe
    queries (what the `query` mask runs after each candidate) from dev as well, with every
    record whose input is a quality query's, a test query's or a candidate's left out.

    Each draw is label-balanced and seeded by (seed, split) so that changing
    one size never reshuffles another set. A task without a dev split (`splits`
    has no "dev", as for GSM8K) holds its quality queries out of train: they are
    drawn first, with the seed a dev draw would use, and the candidates are then
    drawn from train with every record equal to a query left out. So the queries
    never depend on the candidate count, and more quality queries replace only
    the candidates that became queries. `key` is the config key of `sizes`
    (`tasks.<task>.sizes`), which a draw that asks for too many names.
    """
    train, dev = splits["train"], splits.get("dev")
    if dev is None:
        quality = balanced_sample(
            train, sizes["quality_queries"], seed + 1, what=f"{key}.quality_queries (quality queries, held out of train: the task has no dev split)"
        )
        held = {(r.input, r.answer) for r in quality}
        held_ids = {r.id for r in train if (r.input, r.answer) in held}
        candidates = balanced_sample(
            train, sizes["candidates"], seed, exclude=held_ids, what=f"{key}.candidates (candidate pool, from train, quality queries held out)"
        )
    else:
        candidates = balanced_sample(train, sizes["candidates"], seed, what=f"{key}.candidates (candidate pool, from train)")
        # No candidate is ever its own quality query. Examples are matched by content, not id:
        # records without an id of their own (DataICL) are numbered per file, so ids repeat
        # across splits and would exclude unrelated dev records.
        drawn = {(r.input, r.answer) for r in candidates}
        duplicates = {r.id for r in dev if (r.input, r.answer) in drawn}
        quality = balanced_sample(
            dev, sizes["quality_queries"], seed + 1, exclude=duplicates, what=f"{key}.quality_queries (quality queries, from dev)"
        )
    tests = balanced_sample(
        splits["test"], sizes.get("test_queries", 0), seed + 2, what=f"{key}.test_queries (test queries, from test)"
    )
    probes = probe_sample(dev if dev is not None else train, candidates, quality, tests,
                          sizes.get("probe_queries", PROBE_QUERIES), seed + 3, "dev" if dev is not None else "train")
    return {
        "candidates": _table(
            candidates, "demonstration", [template.demonstration_text(r) for r in candidates], tokenizer, "cand_id"
        ),
        "quality_queries": _table(quality, "query", [template.query_text(r) for r in quality], tokenizer, "query_id"),
        "test_queries": _table(tests, "query", [template.query_text(r) for r in tests], tokenizer, "query_id"),
        "probe_queries": _table(probes, "query", [template.query_text(r) for r in probes], tokenizer, "query_id"),
    }


def probe_sample(pool: list[Record], candidates, quality, tests, n: int, seed: int, split: str) -> list[Record]:
    """n label-balanced, seeded probe queries from `pool`, none of whose inputs is a candidate's,
    a quality query's or a test query's.

    Why not the quality queries: under causal attention a query's tokens after a demonstration
    carry the model's prediction for that query, which is what quality scores; a lens reading
    them at late layers would correlate the outcome with itself. Matching is by input text (the
    query is rendered from the input alone), so a duplicate with another id is left out too.
    """
    if n == 0:
        return []
    used = {r.input for r in (*candidates, *quality, *tests)}
    taken = {r.id for r in pool if r.input in used}
    return balanced_sample(
        pool, n, seed, exclude=taken,
        what=f"probe queries (sizes.probe_queries; {split}, candidates, quality and test queries left out)",
    )
