"""The lenses a reported feature belongs to: moments (and n_tokens), massive activations, SAE."""

from __future__ import annotations

from .massive import MASSIVE

LENSES = ("moments", "massive", "sae")
# Numeric features of the SAE lens that enter the Spearman report (sae_features.py defines them).
SAE_FEATURES = ("sae_nmse", "sae_l0", "sae_entropy", "sae_task_cosine")


def lens_of(feature: str) -> str:
    if feature in SAE_FEATURES:
        return "sae"
    if feature in MASSIVE:
        return "massive"
    return "moments"
