"""Chosen demonstrations in forms other tools read: JSONL lines and lm-evaluation-harness samples.

`set_lines` gives one JSON object per set: one per test query for a per-query strategy, one
(query_id -1) for a set shared by every test query. Each carries the strategy instance's name
and settings, the demonstrations rendered with the task's template in prompt order, their
record ids (the source dataset's ids) and candidate ids, and for a per-query set the test
query's id, record id and input.

`lm_eval_samples` gives what lm-evaluation-harness accepts as `fewshot_config.samples`: a list
of documents, one per demonstration in prompt order, so that `sampler: first_n` with
`num_fewshot: k` uses exactly this set. Each document has `input`, `answer`, `options`,
`gold_index` (-1 for generation), `label`, `record_id` and `demonstration` (the rendered
text); a task's `doc_to_text`/`doc_to_target` pick the fields. A per-query strategy has no
single list: its file maps each test query's record id (its query id where record ids repeat)
to that query's list.
"""

from __future__ import annotations

import json

import polars as pl

DOC_FIELDS = ("input", "answer", "options", "gold_index", "label", "record_id", "demonstration")


def _docs(candidates: pl.DataFrame, cand_ids: list[int]) -> list[dict]:
    by_id = {row["cand_id"]: row for row in candidates.iter_rows(named=True)}
    return [{field: by_id[c][field] for field in DOC_FIELDS} for c in cand_ids]


def _sets(selection: pl.DataFrame) -> list[tuple[int, list[int]]]:
    ordered = selection.sort("query_id", "position")
    grouped = ordered.group_by("query_id", maintain_order=True).agg(pl.col("cand_id"))
    return list(zip(grouped["query_id"].to_list(), grouped["cand_id"].to_list()))


def set_lines(name: str, settings: dict, selection: pl.DataFrame, candidates: pl.DataFrame,
              queries: pl.DataFrame | None) -> list[dict]:
    """One JSON-ready dict per set of the selection table (see the module's docstring)."""
    test = {} if queries is None else {row["query_id"]: row for row in queries.iter_rows(named=True)}
    lines = []
    for query_id, cand_ids in _sets(selection):
        docs = _docs(candidates, cand_ids)
        line = {"strategy": name, "settings": settings, "query_id": query_id}
        if query_id != -1 and query_id in test:
            line["test_record_id"] = test[query_id]["record_id"]
            line["test_input"] = test[query_id]["input"]
        line.update(
            demonstrations=[d["demonstration"] for d in docs],
            record_ids=[d["record_id"] for d in docs],
            cand_ids=[int(c) for c in cand_ids],
        )
        lines.append(line)
    return lines


def lm_eval_samples(selection: pl.DataFrame, candidates: pl.DataFrame, queries: pl.DataFrame | None) -> list | dict:
    """A shared set's documents (a list), or per-query sets as {test record id: documents}."""
    sets = _sets(selection)
    if [q for q, _ in sets] == [-1]:
        return _docs(candidates, sets[0][1])
    record = {} if queries is None else dict(zip(queries["query_id"].to_list(), queries["record_id"].to_list()))
    if len(set(record.values())) < len(record):  # record ids that repeat cannot be keys: query ids are
        record = {}
    return {str(record.get(q, q)): _docs(candidates, ids) for q, ids in sets}


def write_sets(path_jsonl: str, path_lm_eval: str, name: str, settings: dict, selection: pl.DataFrame,
               candidates: pl.DataFrame, queries: pl.DataFrame | None) -> None:
    with open(path_jsonl, "w") as out:
        for line in set_lines(name, settings, selection, candidates, queries):
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    with open(path_lm_eval, "w") as out:
        json.dump(lm_eval_samples(selection, candidates, queries), out, ensure_ascii=False, indent=1)
