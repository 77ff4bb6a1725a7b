"""The quality metrics and the per-query outcome each one averages (no model needed to read them)."""

from __future__ import annotations

QUALITY_METRICS = ("accuracy", "gold_logprob", "accuracy_norm", "gold_logprob_norm")

# Each metric is a candidate's mean over the quality queries of one column of
# quality_by_query.parquet.
OUTCOME_OF = {
    "accuracy": "correct",
    "gold_logprob": "gold_logprob",
    "accuracy_norm": "correct_norm",
    "gold_logprob_norm": "gold_logprob_norm",
}
