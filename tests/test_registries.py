"""One registry per plug-in axis (issue 17): selection strategies, lenses, masks, sites, record
formats and quality definitions. Each registry's names are the schema's enums; each entry's
code is in the import closure (so in the code hash) of the rule script that uses it; and adding
a toy strategy, lens, mask and record format is one module and one registry entry each (plus
the name in the schema's enums), shown end to end through one tiny Snakemake run."""

from __future__ import annotations

import re
import sys
import textwrap

import polars as pl
import pytest
import yaml

from demoscope.activations.capture import SITES
from demoscope.codehash import closure
from demoscope.lenses.registry import LENS_TABLES, LENSES, STORE_LENSES
from demoscope.activations.mask_registry import MASKS
from demoscope.quality.definitions import DEFINITIONS
from demoscope.data.record_formats import FORMATS
from demoscope.selection.strategies import STRATEGIES

from conftest import REPO, make_workspace, sentiment_rows, snakemake, tiny_config, write_jsonl

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCRIPTS = REPO / "workflow" / "scripts"


def enums(node) -> list[list]:
    """Every `enum` list anywhere in the schema."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("enum"), list):
            found.append(node["enum"])
        for value in node.values():
            found += enums(value)
    elif isinstance(node, list):
        for value in node:
            found += enums(value)
    return found


# Registry -> how many schema enums list its names (a place forgotten would be one fewer).
REGISTRIES = {
    "selection.strategies": (lambda: STRATEGIES, 1),
    "masks": (lambda: MASKS, 3),  # dumps, sae.stores, selection.activation
    "sites": (lambda: SITES, 3),
    "record formats": (lambda: FORMATS, 2),  # local and hub sources
    "quality.definition": (lambda: DEFINITIONS, 1),
    "selection.activation.lens": (lambda: LENS_TABLES, 1),
}


@pytest.mark.parametrize("axis", REGISTRIES)
def test_every_schema_enum_of_a_registry_lists_exactly_its_names(axis):
    registry, places = REGISTRIES[axis]
    names = set(registry())
    schema = yaml.safe_load(SCHEMA.read_text())
    # An enum that names any entry of the registry must name every entry and nothing else.
    touching = [enum for enum in enums(schema) if names & set(enum)]
    assert len(touching) == places, (axis, touching)
    for enum in touching:
        assert set(enum) == names, f"{SCHEMA}: enum {enum} differs from the {axis} registry {sorted(names)}"


def test_the_enum_comparison_can_fail():
    schema = yaml.safe_load(SCHEMA.read_text())
    touching = [enum for enum in enums(schema) if set(enum) & set(MASKS)]
    assert touching and all(set(enum) != set(MASKS) | {"toy"} for enum in touching)


def module_of(function) -> str:
    return sys.modules[function.__module__].__name__


def in_closure(script: str) -> set[str]:
    return set(closure(SCRIPTS / f"{script}.py"))


def test_each_strategy_kind_is_in_the_select_scripts_closure():
    modules = in_closure("select")
    assert {"demoscope.selection.strategies", "demoscope.selection.choose"} <= modules
    for kind, entry in STRATEGIES.items():
        assert module_of(entry.choose) in modules, kind


def test_each_store_lens_is_in_the_feature_scripts_closure():
    modules = in_closure("compute_features")
    assert {"demoscope.lenses.registry", "demoscope.lenses.moments", "demoscope.lenses.massive"} <= modules
    for name, lens in STORE_LENSES.items():
        assert module_of(lens.compute) in modules, name
    # The report and the task side name each feature's lens from the same registry.
    for script in ("report", "task_correlation"):
        assert "demoscope.lenses.registry" in in_closure(script)
    assert {"moments", "sae", "task_vector", "attention", "controls", "massive"} <= set(LENSES)


def test_each_mask_and_site_is_in_the_dump_scripts_closure():
    modules = in_closure("dump_activations")
    # The built-in planners live in masks.py, reached through the registry's `_builtin`.
    assert {"demoscope.activations.mask_registry", "demoscope.activations.masks", "demoscope.activations.capture"} <= modules
    for name, entry in MASKS.items():
        assert module_of(entry.plan) in modules, name


def test_each_record_format_is_in_the_prompt_scripts_closure():
    modules = in_closure("build_prompts")
    assert "demoscope.data.record_formats" in modules
    for name, parse in FORMATS.items():
        assert module_of(parse) in modules, name


def test_each_quality_definition_names_the_rule_that_writes_its_table():
    rules = "".join(path.read_text() for path in (REPO / "workflow" / "rules").glob("*.smk"))
    for name, entry in DEFINITIONS.items():
        assert (SCRIPTS / f"{entry.script}.py").is_file(), name
        # The rule whose script it is outputs the table.
        rule = next(block for block in re.split(r"\n(?=rule )", rules) if f'scripts/{entry.script}.py"' in block)
        assert f'paths.task_table("{entry.table}")' in rule, name
        assert f'paths.task_table("{entry.table}_by_query")' in rule, name


# The four toys of the acceptance test: each is one module and one registry entry, in its
# stage package (next to the registry it joins).
TOY_MODULES = {
    "selection/toy_strategy.py": '''
        """A toy selection strategy: the k candidates with the shortest input."""
        import numpy as np

        from . import selectors


        def choose(spec, x):
            lengths = np.array([len(text) for text in x.candidates["input"].to_list()], dtype=float)
            return selectors.top_k(lengths, x.k, x.labels, largest=False), lengths, "shortest inputs"
        ''',
    "lenses/toy_lens.py": '''
        """A toy store lens: the largest magnitude over a segment's tokens and dims."""
        import numpy as np

        FEATURES = ("toy_absmax",)


        def compute(tokens, settings):
            return {"toy_absmax": float(np.abs(tokens).max()) if len(tokens) else float("nan")}
        ''',
    "activations/toy_mask.py": '''
        """A toy mask: the demonstration alone, upper-cased, causal."""


        def plan(demos, tokenizer, batch_tokens, **context):
            from .masks import plan_causal  # torch, when a dump runs

            return plan_causal([demo.upper() for demo in demos], tokenizer, batch_tokens)
        ''',
    "data/toy_format.py": '''
        """A toy record format: {"review": text, "stars": 1..5}; 3 stars and up is positive."""
        from .records import DataError, Record


        def parse(obj, where, index, spec, key="local"):
            if "review" not in obj or "stars" not in obj:
                raise DataError(f"{where}: a toy record needs review and stars")
            answer = "positive" if int(obj["stars"]) >= 3 else "negative"
            text = f"Review: {obj['review']} \\nSentiment:"
            return Record(str(obj.get("id", index)), text, answer, ("negative", "positive"), answer)
        ''',
}
# (registry module, text after which the entry goes, the entry); the static import goes first.
TOY_ENTRIES = [
    ("selection/strategies.py", "STRATEGIES: dict[str, Strategy] = {\n", '    "toy": Strategy(toy_strategy.choose),\n',
     "toy_strategy"),
    ("lenses/registry.py", "LENSES: dict[str, Lens] = {\n", '    "toy": Lens(toy_lens.FEATURES, toy_lens.compute),\n',
     "toy_lens"),
    ("activations/mask_registry.py", "MASKS: dict[str, Mask] = {\n", '    "toy": Mask(toy_mask.plan),\n', "toy_mask"),
    ("data/record_formats.py", "FORMATS: dict[str, Callable] = {\n", '    "toy": toy_format.parse,\n', "toy_format"),
]


def add_toys(workdir):
    package = workdir / "workflow" / "demoscope"
    for name, text in TOY_MODULES.items():
        (package / name).write_text("from __future__ import annotations\n" + textwrap.dedent(text))
    for registry, anchor, entry, module in TOY_ENTRIES:
        path = package / registry
        text = path.read_text()
        assert anchor in text, (registry, anchor)
        text = text.replace(anchor, anchor + entry)
        text = text.replace("from __future__ import annotations\n", f"from __future__ import annotations\n\nfrom . import {module}\n", 1)
        path.write_text(text)
    # The schema's enums (the unit tests above keep them equal to the registries).
    schema = workdir / "workflow" / "schemas" / "config.schema.yaml"
    text = schema.read_text()
    for names in ("dataicl, ai2_mc, gsm8k, fields", "causal, instruction, bidirectional, packed, query",
                  "random, activation, quality_oracle, similarity, diversity, uncertainty, votek, bm25, dpp, mdl, cone"):
        assert names in text
        text = text.replace(f"[{names}]", f"[{names}, toy]")
    schema.write_text(text)


@pytest.mark.slow
def test_a_toy_strategy_lens_mask_and_record_format_run_end_to_end(tmp_path, tiny_llama, tiny_data):
    data = tmp_path / "data"
    for split, n, seed in (("train", 24, 1), ("dev", 12, 2), ("test", 12, 3)):
        rows = sentiment_rows(n, seed)
        write_jsonl(data / "toy" / f"{split}.jsonl", [
            {"review": row["input"].removeprefix("Review: ").removesuffix(" \nSentiment:"),
             "stars": 5 if row["output"] == "positive" else 1} for row in rows])
    config = tiny_config(tiny_llama, data)
    task = dict(config["tasks"]["sst2"], local={"dir": "toy", "format": "toy"})
    task.pop("hub", None)
    task["sizes"] = {"candidates": 8, "quality_queries": 4, "test_queries": 3}
    config["tasks"] = {"toy": task}
    config["dumps"] = {"causal": ["mlp_out"], "toy": ["mlp_out"]}
    config["sae"]["stores"] = []
    config["compute"]["threads"] = 1
    config["report"].update(bootstrap=50, permutations=50, reliability_splits=20)
    config["selection"].update(k=2, seeds=[0], strategies=["random", "toy"], activation=[], task_sets=3)
    config["selection"].pop("votek", None)
    workdir = make_workspace(tmp_path / "wf", config)
    add_toys(workdir)
    base = workdir / "results" / "tiny" / "toy"
    snakemake(workdir, "results/report/spearman.csv", "results/report/strategies.csv",
              str(base.relative_to(workdir) / "features" / "toy" / "mlp_out.parquet"))

    # The task was read through the toy format: its prompts carry the toy parser's text.
    candidates = pl.read_parquet(base / "prompts" / "candidates.parquet")
    assert len(candidates) == 8 and candidates["answer"].is_in(["negative", "positive"]).all()
    # The toy strategy was selected and evaluated, and reported beside random.
    evaluation = pl.read_parquet(base / "evaluation" / "toy.parquet")
    assert evaluation.height > 0
    assert "toy" in pl.read_csv(workdir / "results/report/strategies.csv")["strategy"].to_list()
    chosen = pl.read_parquet(base / "selection" / "toy.parquet")
    # Its own choice: the scores are the chosen inputs' lengths, and no unchosen candidate of
    # the same label is shorter (the k are label-balanced).
    length = dict(zip(candidates["cand_id"], candidates["input"].str.len_chars()))
    label = dict(zip(candidates["cand_id"], candidates["label"]))
    assert set(chosen["detail"]) == {"shortest inputs"} and chosen.height == 2
    assert chosen["score"].to_list() == [float(length[c]) for c in chosen["cand_id"]]
    for c in chosen["cand_id"]:
        assert all(length[o] >= length[c] for o in length if label[o] == label[c] and o not in chosen["cand_id"])
    # The toy mask's store was dumped and described, with the toy lens's column.
    features = pl.read_parquet(base / "features" / "toy" / "mlp_out.parquet")
    assert features.height > 0 and "toy_absmax" in features.columns
    # The toy lens's feature is correlated and reported under its own lens, for both masks.
    spearman = pl.read_csv(workdir / "results/report/spearman.csv")
    toy = spearman.filter(pl.col("feature") == "toy_absmax")
    assert toy.height > 0 and set(toy["lens"]) == {"toy"}
    assert set(toy["mask"]) == {"causal", "toy"}
