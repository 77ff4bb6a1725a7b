"""The lenses a reported feature belongs to: moments, massive activations, SAE, the task vector,
the attention lens (docs/lenses.md), and the controls."""

from __future__ import annotations

from .massive import MASSIVE

LENSES = ("moments", "massive", "sae", "task_vector", "attention", "controls")
# Numeric features of the SAE lens that enter the Spearman report (sae_features.py defines them).
SAE_FEATURES = ("sae_nmse", "sae_l0", "sae_entropy", "sae_task_cosine")
# The task-vector lens (task_vector.py defines them).
TASK_VECTOR_FEATURES = ("tv_cosine", "tv_norm")
# The attention lens (attention.py): per layer (heads averaged), and at the calibration's best head.
ATTENTION_FEATURES = {"probe": ("attn_demo", "attn_label"), "best_head": ("attn_label_head", "kato_affinity")}


# Non-activation signals per candidate (controls.py defines them); they have no layer.
CONTROL_FEATURES = ("n_tokens", "label_index", "demo_loglik", "zero_shot_gold", "query_cosine")


def lens_of(feature: str) -> str:
    if feature in CONTROL_FEATURES:
        return "controls"
    if feature in SAE_FEATURES:
        return "sae"
    if feature in TASK_VECTOR_FEATURES:
        return "task_vector"
    if any(feature in names for names in ATTENTION_FEATURES.values()):
        return "attention"
    if feature in MASSIVE:
        return "massive"
    return "moments"
