"""A demonstration's quality: 1-shot scoring, its metrics, CondAcc."""
