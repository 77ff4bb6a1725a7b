"""The selection strategy registry (`STRATEGIES`: kind -> its entry), and the strategies as
named instances: one name per select job and evaluate job.

`instances(selection)` expands the config's `selection` block into names usable as path
components and Snakemake wildcards, each with only its own settings, so that adding a
strategy or a seed creates new jobs and leaves every other job's parameters unchanged:

- `random-s{seed}`                       one per seed in `selection.seeds`
- `activation-{feature}-L{layer}-{mask}-{site}-{top|bottom}` per `selection.activation`
  entry (`L{layer}` is `Lbest` for the best-layer shortcut; a lens other than the default
  `moments` is named after `activation-`, e.g. `activation-sae-...`)
- `quality_oracle`, `similarity`, `diversity`, `votek`
- `uncertainty-most`, `uncertainty-least`
- `bm25`, `dpp`, `mdl`, `cone` (per-query retrievers, `retrievers`)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# Each kind's `choose` is imported statically, so that the select rule's code hash (an AST walk
# of scripts/select.py's imports) covers it. A new kind: one module with its `choose`, one
# entry below, and its name in the schema's `selection.strategies` enum (a test compares them).
from demoscope.selection import choose as selection


@dataclass(frozen=True)
class Strategy:
    """One selection strategy kind.

    - `choose(spec, inputs)`: the selection (`selection.Inputs` says what it reads and returns).
    - `reads`: the signals its select job reads besides the candidates and the test queries'
      label-free columns (which every select job reads, for the contamination guard): any of
      `features` (its lens's feature table; with `layer: best` also the correlation table),
      `quality`, `embeddings`, `zero_shot`, and `model` (the job loads the evaluated model).
    - `per_query`: it picks a different set for every test query.
    - `settings`: the `selection` block whose settings each instance carries.
    - `run_seed`: the instance receives the run's `seed`.
    - `expand(selection)`: instance name -> its own settings; None: one instance, named after
      the kind.
    """

    choose: Callable
    reads: tuple[str, ...] = ()
    per_query: bool = False
    settings: str | None = None
    run_seed: bool = False
    expand: Callable[[dict], dict] | None = None
    reference: bool = False  # an upper reference, not a selection method

    @property
    def loads_model(self) -> bool:
        return "model" in self.reads


def activation_name(entry: dict, direction: str) -> str:
    lens = entry.get("lens", "moments")
    lens_part = "" if lens == "moments" else f"{lens}-"
    return f"activation-{lens_part}{entry['feature']}-L{entry['layer']}-{entry['mask']}-{entry['site']}-{direction}"


def _random(selection: dict) -> dict:
    return {f"random-s{seed}": {"kind": "random", "seed": seed} for seed in selection.get("seeds", [0])}


def _activation(selection: dict) -> dict:
    out = {}
    for entry in selection.get("activation", []):
        spec = {"lens": "moments", **entry}
        if spec["layer"] == "best":
            spec["quality"] = selection.get("best_layer_metric", "accuracy")
        for direction in ("top", "bottom"):
            out[activation_name(spec, direction)] = {"kind": "activation", **spec, "direction": direction}
    return out


def _uncertainty(selection: dict) -> dict:
    return {f"uncertainty-{end}": {"kind": "uncertainty", "end": end} for end in ("most", "least")}


# Kind -> its entry, in the order the strategies table lists them.
STRATEGIES: dict[str, Strategy] = {
    "random": Strategy(selection.choose_random, run_seed=True, expand=_random),
    "activation": Strategy(selection.choose_activation, ("features",), expand=_activation),
    "quality_oracle": Strategy(selection.choose_quality_oracle, ("quality",), reference=True),
    "similarity": Strategy(selection.choose_similarity, ("embeddings",), per_query=True),
    "diversity": Strategy(selection.choose_diversity, ("embeddings",)),
    "uncertainty": Strategy(selection.choose_uncertainty, ("zero_shot",), expand=_uncertainty),
    "votek": Strategy(selection.choose_votek, ("embeddings",), settings="votek"),
    "bm25": Strategy(selection.choose_bm25, per_query=True),
    "dpp": Strategy(selection.choose_dpp, ("embeddings",), per_query=True, settings="dpp"),
    "mdl": Strategy(selection.choose_mdl, ("embeddings", "model"), per_query=True, settings="mdl", run_seed=True),
    "cone": Strategy(selection.choose_cone, ("embeddings", "model"), per_query=True, settings="cone"),
}

# Views of the registry, under the names the rest of the package reads.
KINDS = tuple(STRATEGIES)
PER_QUERY = tuple(kind for kind, entry in STRATEGIES.items() if entry.per_query)
READS = {kind: entry.reads for kind, entry in STRATEGIES.items()}
MODEL_KINDS = tuple(kind for kind, entry in STRATEGIES.items() if entry.loads_model)
REFERENCE = tuple(kind for kind, entry in STRATEGIES.items() if entry.reference)


def strategy(kind: str) -> Strategy:
    if kind not in STRATEGIES:
        raise ValueError(f"unknown selection strategy kind {kind!r}; allowed: {list(STRATEGIES)}")
    return STRATEGIES[kind]


def instances(selection: dict) -> dict[str, dict]:
    """Instance name -> its own settings (`kind` and what that kind reads), in config order."""
    out: dict[str, dict] = {}
    for kind in selection.get("strategies", []):
        entry = strategy(kind)
        if entry.expand is not None:
            out.update(entry.expand(selection))
        elif entry.settings:
            out[kind] = {"kind": kind, **selection.get(entry.settings, {})}
        else:
            out[kind] = {"kind": kind}
    return out


def group(name: str) -> str:
    """The row a strategy instance joins in the strategies table: the random seeds pool into
    `random`; every other instance is its own row."""
    return "random" if name.startswith("random-s") else name


def kind_of(name: str) -> str:
    return next(kind for kind in KINDS if name == kind or name.startswith(kind + "-"))
