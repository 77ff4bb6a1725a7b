"""Selection strategies as named instances: one name per select job and evaluate job.

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

KINDS = (
    "random", "activation", "quality_oracle", "similarity", "diversity", "uncertainty", "votek",
    "bm25", "dpp", "mdl", "cone",
)
# Strategies that pick a different set for every test query.
PER_QUERY = ("similarity", "bm25", "dpp", "mdl", "cone")
# The signals each kind reads besides the candidates and the test queries' label-free columns
# (which every select job reads, for the contamination guard). `activation` reads its lens's
# feature table, and the correlation table for `layer: best`; `model` is the evaluated model.
READS = {
    "random": (),
    "activation": ("features",),
    "quality_oracle": ("quality",),
    "similarity": ("embeddings",),
    "diversity": ("embeddings",),
    "uncertainty": ("zero_shot",),
    "votek": ("embeddings",),
    "bm25": (),
    "dpp": ("embeddings",),
    "mdl": ("embeddings", "model"),
    "cone": ("embeddings", "model"),
}
# Kinds whose select job loads the model.
MODEL_KINDS = tuple(kind for kind, reads in READS.items() if "model" in reads)
# Settings blocks of `selection` that a kind's instance carries.
SETTINGS = {"votek": "votek", "dpp": "dpp", "mdl": "mdl", "cone": "cone"}
# Upper references, not selection methods: they read the candidates' measured quality.
REFERENCE = ("quality_oracle",)


def activation_name(entry: dict, direction: str) -> str:
    lens = entry.get("lens", "moments")
    lens_part = "" if lens == "moments" else f"{lens}-"
    return f"activation-{lens_part}{entry['feature']}-L{entry['layer']}-{entry['mask']}-{entry['site']}-{direction}"


def instances(selection: dict) -> dict[str, dict]:
    """Instance name -> its own settings (`kind` and what that kind reads), in config order."""
    out: dict[str, dict] = {}
    for kind in selection.get("strategies", []):
        if kind == "random":
            for seed in selection.get("seeds", [0]):
                out[f"random-s{seed}"] = {"kind": "random", "seed": seed}
        elif kind == "activation":
            for entry in selection.get("activation", []):
                spec = {"lens": "moments", **entry}
                if spec["layer"] == "best":
                    spec["quality"] = selection.get("best_layer_metric", "accuracy")
                for direction in ("top", "bottom"):
                    out[activation_name(spec, direction)] = {"kind": "activation", **spec, "direction": direction}
        elif kind == "uncertainty":
            for end in ("most", "least"):
                out[f"uncertainty-{end}"] = {"kind": "uncertainty", "end": end}
        elif kind in SETTINGS:
            out[kind] = {"kind": kind, **selection.get(SETTINGS[kind], {})}
        else:
            out[kind] = {"kind": kind}
    return out


def group(name: str) -> str:
    """The row a strategy instance joins in the strategies table: the random seeds pool into
    `random`; every other instance is its own row."""
    return "random" if name.startswith("random-s") else name


def kind_of(name: str) -> str:
    return next(kind for kind in KINDS if name == kind or name.startswith(kind + "-"))
