"""The lenses a reported feature belongs to: moments, massive activations, SAE, and the controls."""

from __future__ import annotations

from .massive import MASSIVE

LENSES = ("moments", "massive", "sae", "controls")
# Numeric features of the SAE lens that enter the Spearman report (sae_features.py defines them).
SAE_FEATURES = ("sae_nmse", "sae_l0", "sae_entropy", "sae_task_cosine")


# Non-activation signals per candidate (controls.py defines them); they have no layer.
CONTROL_FEATURES = ("n_tokens", "label_index", "demo_loglik", "zero_shot_gold", "query_cosine")


def lens_of(feature: str) -> str:
    if feature in CONTROL_FEATURES:
        return "controls"
    if feature in SAE_FEATURES:
        return "sae"
    if feature in MASSIVE:
        return "massive"
    return "moments"
