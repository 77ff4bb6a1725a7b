"""The attention-mask registry (`MASKS`: mask -> its entry): how a mask's dump plans its
forwards, which prompt tables it reads and which settings reach its dump job.

A new mask is one module with a `plan(demos, tokenizer, batch_tokens, **context)` function
returning a `masks.Plan`, one entry here (importing that module statically: the dump rule's
code hash is the AST walk of its script's imports) and its name in the schema's mask enums (a
test compares them). This module is read when the rules load: torch stays out of it, so a
mask module imports torch inside its functions, and the built-in planners of masks.py are
reached through `_builtin`, which imports masks.py when a dump runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Mask:
    """- `plan(demos, tokenizer, batch_tokens, dtype=..., **context)`: the forwards (masks.Plan).
    - `tables(config)`: dump input name -> prompts table (results/<model>/<task>/prompts/<table>.parquet)
      it reads besides the candidates.
    - `context(config, task)`: the settings its planner receives (and only those, so that no
      other setting reruns its dumps).
    """

    plan: Callable
    tables: Callable[[dict], dict] = field(default=lambda config: {})
    context: Callable[[dict, str], dict] = field(default=lambda config, task: {})


def _builtin(name: str) -> Callable:
    def plan(demos, tokenizer, batch_tokens, **context):
        # torch: imported when a dump runs, not when the rules load this registry.
        from demoscope.activations import masks

        return masks.PLANNERS[name](demos, tokenizer, batch_tokens, **context)

    return plan


def _template(config: dict, task: str) -> dict:
    template = config["tasks"][task].get("template", {})
    return {"instruction": template.get("instruction", ""), "separator": template.get("separator", "\n\n")}


def _query_tables(config: dict) -> dict:
    """The probe queries (the quality queries only where query_mask.source opts in to the leak)."""
    leaky = config["query_mask"]["source"] == "quality_queries_leaky"
    return {"queries": "quality_queries" if leaky else "probe_queries"}


def _query_context(config: dict, task: str) -> dict:
    query = config["query_mask"]
    return {"n_queries": query["queries"], "source": query["source"], **_template(config, task)}


MASKS: dict[str, Mask] = {
    "causal": Mask(_builtin("causal")),
    "instruction": Mask(_builtin("instruction"), context=_template),
    "bidirectional": Mask(_builtin("bidirectional")),
    "packed": Mask(_builtin("packed")),
    "query": Mask(_builtin("query"), tables=_query_tables, context=_query_context),
}


def mask(name: str) -> Mask:
    if name not in MASKS:
        raise ValueError(f"unknown mask {name!r}; allowed: {list(MASKS)}")
    return MASKS[name]
