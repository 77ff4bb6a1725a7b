"""The lenses a reported feature belongs to: moments (and n_tokens), massive activations, SAE, task vector."""

from __future__ import annotations

from .massive import MASSIVE

LENSES = ("moments", "massive", "sae", "task_vector")
# Numeric features of the SAE lens that enter the Spearman report (sae_features.py defines them).
SAE_FEATURES = ("sae_nmse", "sae_l0", "sae_entropy", "sae_task_cosine")
# The task-vector lens (task_vector.py defines them).
TASK_VECTOR_FEATURES = ("tv_cosine", "tv_norm")


def lens_of(feature: str) -> str:
    if feature in SAE_FEATURES:
        return "sae"
    if feature in TASK_VECTOR_FEATURES:
        return "task_vector"
    if feature in MASSIVE:
        return "massive"
    return "moments"
