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

from demoscope.capture import SITES
from demoscope.codehash import closure
from demoscope.lenses import LENS_TABLES, LENSES, STORE_LENSES
from demoscope.mask_registry import MASKS
from demoscope.quality_definitions import DEFINITIONS
from demoscope.record_formats import FORMATS
from demoscope.strategies import STRATEGIES

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
    assert {"demoscope.strategies", "demoscope.selection"} <= modules
    for kind, entry in STRATEGIES.items():
        assert module_of(entry.choose) in modules, kind


def test_each_store_lens_is_in_the_feature_scripts_closure():
    modules = in_closure("compute_features")
    assert {"demoscope.lenses", "demoscope.moments", "demoscope.massive"} <= modules
    for name, lens in STORE_LENSES.items():
        assert module_of(lens.compute) in modules, name
    # The report and the task side name each feature's lens from the same registry.
    for script in ("report", "task_correlation"):
        assert "demoscope.lenses" in in_closure(script)
    assert {"moments", "sae", "task_vector", "attention", "controls", "massive"} <= set(LENSES)


def test_each_mask_and_site_is_in_the_dump_scripts_closure():
    modules = in_closure("dump_activations")
    # The built-in planners live in masks.py, reached through the registry's `_builtin`.
    assert {"demoscope.mask_registry", "demoscope.masks", "demoscope.capture"} <= modules
    for name, entry in MASKS.items():
        assert module_of(entry.plan) in modules, name


def test_each_record_format_is_in_the_prompt_scripts_closure():
    modules = in_closure("build_prompts")
    assert "demoscope.record_formats" in modules
    for name, parse in FORMATS.items():
        assert module_of(parse) in modules, name


def test_each_quality_definition_names_the_rule_that_writes_its_table():
    rules = "".join(path.read_text() for path in (REPO / "workflow" / "rules").glob("*.smk"))
    for name, entry in DEFINITIONS.items():
        assert (SCRIPTS / f"{entry.script}.py").is_file(), name
        # The rule whose script it is outputs the table.
        rule = next(block for block in re.split(r"\n(?=rule )", rules) if f'scripts/{entry.script}.py"' in block)
        assert f'results/{{model}}/{{task}}/{entry.table}.parquet"' in rule, name
