"""The quality-definition registry (`DEFINITIONS`: `quality.definition` -> its entry): which
table every lens is correlated against and which rule's script writes it.

- `oneshot`: 1-shot accuracy and gold log-prob over the quality queries (quality/oneshot.py,
  scored by `score_quality` jobs, one per block of candidates, which the `merge_quality` rule
  joins): results/<model>/<task>/quality.parquet.
- `condacc`: CondAcc of Chang & Jia (2023), the mean over k-shot prompts holding the candidate
  (condacc.py, the `condacc_quality` rule): results/<model>/<task>/quality_condacc.parquet.

Both tables have the same columns, and each has a `<table>_by_query.parquet` beside it (the
candidate x query outcomes reliability reads). A new definition is one module computing its
table, the rule that runs it, one entry here and its name in the schema's
`quality.definition` enum (a test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QualityDefinition:
    table: str  # results/<model>/<task>/<table>.parquet
    script: str  # scripts/<script>.py writes it (a test checks the rule)


DEFINITIONS: dict[str, QualityDefinition] = {
    "oneshot": QualityDefinition("quality", "merge_quality"),
    "condacc": QualityDefinition("quality_condacc", "condacc_quality"),
}


def definition(name: str) -> QualityDefinition:
    if name not in DEFINITIONS:
        raise ValueError(f"quality.definition: unknown {name!r}; allowed: {list(DEFINITIONS)}")
    return DEFINITIONS[name]
