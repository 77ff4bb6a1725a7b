"""The lens registry (`LENSES`: name -> its entry): moments, massive activations, SAE, the task
vector, the attention lens (docs/lenses.md) and the controls, and which lens a reported feature
belongs to.

A lens computed per segment from an activation store (moments, massive) has a `compute`; its
columns join the store's feature table (features.py), are correlated with quality by the
`correlate` rule and enter the Spearman report. A new such lens is one module with its feature
names and `compute`, and one entry here. The other lenses have rules of their own
(rules/lenses.smk, sae.smk, controls.smk) and list their feature names here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# Imported statically (numpy only): the code hash of every rule whose script reads this
# registry covers the lens code.
from demoscope.lenses import massive, moments
from demoscope.lenses import names


@dataclass(frozen=True)
class Lens:
    """- `features`: its numeric features that enter the Spearman report.
    - `compute(tokens, settings)`: per segment (tokens x dims of one layer), its columns of the
      store's feature table; `settings` holds `threshold`, `ratio` (the massive lens) and
      `skip_first_token`. None for a lens with rules of its own.
    - `tables`: (feature folder, correlation folder) of its per-(mask, site) tables under
      results/<model>/<task>/, for a lens `selection.activation` can read (its `lens` key).
    """

    features: tuple[str, ...]
    compute: Callable[[object, dict], dict] | None = None
    tables: tuple[str, str] | None = None


def _moments(tokens, settings: dict) -> dict:
    # The sink token is left out with skip_first_token (features.py says why).
    return moments.token_moments(tokens[1:] if settings["skip_first_token"] else tokens)


def _massive(tokens, settings: dict) -> dict:
    # Every token: the sink is where massive activations live.
    return massive.massive_features(tokens, settings["threshold"], settings["ratio"])


# The attention lens (attention.py): per layer (heads averaged), and at the calibration's best head.
ATTENTION_FEATURES = {"probe": ("attn_demo", "attn_label"), "best_head": ("attn_label_head", "kato_affinity")}

LENSES: dict[str, Lens] = {
    "moments": Lens(
        moments.MOMENTS + tuple(f"last_{m}" for m in moments.MOMENTS), _moments, ("features", "correlations")
    ),
    "massive": Lens(massive.MASSIVE, _massive),
    # sae/features.py computes them (their names live in names.py).
    "sae": Lens(names.SAE, tables=("sae_features", "sae_correlations")),
    # task_vector.py computes them (their names live in names.py).
    "task_vector": Lens(names.TASK_VECTOR),
    "attention": Lens(tuple(name for group in ATTENTION_FEATURES.values() for name in group)),
    # Non-activation signals per candidate (controls.py defines them); they have no layer.
    "controls": Lens(("n_tokens", "label_index", "demo_loglik", "zero_shot_gold", "query_cosine")),
}

SAE_FEATURES = LENSES["sae"].features
TASK_VECTOR_FEATURES = LENSES["task_vector"].features
CONTROL_FEATURES = LENSES["controls"].features
# The lenses computed from an activation store's segments, in the feature table's column order.
STORE_LENSES = {name: lens for name, lens in LENSES.items() if lens.compute is not None}
# Lens -> (feature folder, correlation folder), for the lenses selection.activation can read.
LENS_TABLES = {name: lens.tables for name, lens in LENSES.items() if lens.tables is not None}


def lens_of(feature: str) -> str:
    """The lens a feature belongs to (moments for a name no lens lists)."""
    return next((name for name, lens in LENSES.items() if feature in lens.features), "moments")
