"""Config checks with messages that name the key and what it may be.

The JSON schema says what each key may hold; `check_config` turns its errors
into one line each (`tasks.sst2.kind: 'clasification' is not allowed; allowed:
classification, multiple_choice`) and adds the checks a schema cannot express.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from demoscope.data.records import template_fields

TEMPLATE_FIELDS = {"input", "answer", "answer_prefix"}
REQUIRED_FIELDS = {"demonstration": {"input", "answer"}, "query": {"input"}}


class ConfigError(ValueError):
    """The config cannot run; the message lists every problem found, one per line."""


def _path(parts) -> str:
    return ".".join(str(p) for p in parts) or "(top level)"


def _describe(error) -> str:
    where = _path(error.absolute_path)
    schema = error.schema
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key {', '.join(repr(k) for k in unknown)}{hint}"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not allowed; allowed: {', '.join(map(str, schema['enum']))}"
    if error.validator == "pattern":
        # Only model and task names carry a pattern: they become path components.
        return f"{where}: {error.instance!r} is not an allowed name (must match {schema['pattern']})"
    return f"{where}: {error.message}"


def schema_errors(config: dict, schema: dict) -> list[str]:
    errors = []
    for error in sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path)):
        errors.append(_describe(error))
    return errors


def _placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def semantic_errors(config: dict) -> list[str]:
    """What a schema cannot say: sources for the chosen mode, template fields, sizes against each other."""
    errors = []
    offline = bool(config.get("data_dir"))
    dumps = config.get("dumps") or {}
    n_query = (config.get("query_mask") or {}).get("queries", 4)
    leaky = (config.get("query_mask") or {}).get("source") == "quality_queries_leaky"
    for name, task in (config.get("tasks") or {}).items():
        if not isinstance(task, dict):
            continue
        need = "local" if offline else "hub"
        if need not in task:
            mode = "data_dir is set, so tasks read local files" if offline else "data_dir is null, so tasks read the hub"
            errors.append(f"tasks.{name}: has no `{need}` source ({mode})")
        template = task.get("template") or {}
        for key, text in template.items():
            if not isinstance(text, str):
                continue
            try:
                fields = _placeholders(text)
            except ValueError as err:
                errors.append(f"tasks.{name}.template.{key}: not a valid template ({err})")
                continue
            unknown = fields - TEMPLATE_FIELDS
            if unknown:
                errors.append(
                    f"tasks.{name}.template.{key}: unknown placeholder {', '.join('{' + f + '}' for f in sorted(unknown))}; "
                    f"allowed: {', '.join('{' + f + '}' for f in sorted(TEMPLATE_FIELDS))}"
                )
            missing = REQUIRED_FIELDS.get(key, set()) - fields
            if missing:
                errors.append(f"tasks.{name}.template.{key}: must contain {', '.join('{' + f + '}' for f in sorted(missing))}")
        errors.extend(_kind_errors(name, task))
        errors.extend(_source_errors(name, task))
        sizes = task.get("sizes") or {}
        pool_key = "quality_queries" if leaky else "probe_queries"
        pool = sizes.get(pool_key, None if leaky else 4)
        if "query" in dumps and isinstance(pool, int) and n_query > pool:
            errors.append(f"query_mask.queries: {n_query} is larger than tasks.{name}.sizes.{pool_key} ({pool})")
        if "instruction" in dumps and not template.get("instruction"):
            errors.append(f"tasks.{name}.template.instruction: the `instruction` mask in dumps needs an instruction text")
    return errors + sae_errors(config) + selection_errors(config) + beyond_errors(config)


def beyond_errors(config: dict) -> list[str]:
    """Quality shards and CondAcc's k fit every task's candidates; the task-vector and attention lenses name tasks that exist."""
    errors = []
    tasks = config.get("tasks") or {}
    quality = config.get("quality") or {}
    k = (quality.get("condacc") or {}).get("k", 4)
    shards = (config.get("compute") or {}).get("quality_shards", 1)
    for name, task in tasks.items():
        n = (task.get("sizes") or {}).get("candidates") if isinstance(task, dict) else None
        if isinstance(n, int) and isinstance(shards, int) and shards > n:
            errors.append(f"compute.quality_shards: {shards} score_quality jobs, but tasks.{name} has {n} candidates")
    if quality.get("definition") == "condacc":
        for name, task in tasks.items():
            n = (task.get("sizes") or {}).get("candidates")
            if isinstance(n, int) and k > n:
                errors.append(f"quality.condacc.k: {k} demonstrations per prompt, but tasks.{name} has {n} candidates")
    for lens in ("task_vector", "attention"):
        for task in (config.get(lens) or {}).get("tasks") or []:
            if task not in tasks:
                errors.append(f"{lens}.tasks: {task!r} is not a task of this config")
    # The attention lens runs the task's probe queries (prompts/probe_queries.parquet) after each
    # candidate: with none there is nothing to average (the schema's default is 4).
    attention = (config.get("attention") or {}).get("tasks", [])
    for name in tasks if attention is None else [t for t in attention if t in tasks]:
        probes = (tasks[name].get("sizes") or {}).get("probe_queries", 4)
        if probes == 0:
            errors.append(f"tasks.{name}.sizes.probe_queries: 0, but attention.tasks runs the attention lens on "
                          f"{name}, which averages over its probe queries")
    return errors


def sae_errors(config: dict) -> list[str]:
    """The SAE lens reads stores that are dumped, for tasks and models that exist."""
    sae = config.get("sae") or {}
    dumps = config.get("dumps") or {"causal": ["mlp_out"]}
    errors = []
    for i, pair in enumerate(sae.get("stores", [["causal", "mlp_out"]])):
        mask, site = pair
        if site not in (dumps.get(mask) or []):
            errors.append(f"sae.stores.{i}: [{mask}, {site}] is not dumped; add {site} to dumps.{mask} or drop the pair")
    for task in sae.get("tasks") or []:
        if task not in (config.get("tasks") or {}):
            errors.append(f"sae.tasks: {task!r} is not a task of this config")
    for model in sae.get("pretrained") or {}:
        if model not in (config.get("models") or {}):
            errors.append(f"sae.pretrained: {model!r} is not a model of this config")
    pool, held_out = sae.get("pool", 512), sae.get("held_out", 0.1)
    if not 1 <= round(held_out * pool) < pool:
        errors.append(f"sae.held_out: {held_out} of sae.pool {pool} records leaves no held-out or no training record")
    return errors


def selection_errors(config: dict) -> list[str]:
    """The selection block against the rest: stores that exist, metrics that are correlated,
    k within every pool."""
    errors = []
    selection = config.get("selection") or {}
    dumps = config.get("dumps") or {"causal": ["mlp_out"]}
    k = selection.get("k", 4)
    for name, task in (config.get("tasks") or {}).items():
        candidates = (task.get("sizes") or {}).get("candidates") if isinstance(task, dict) else None
        if isinstance(candidates, int) and k > candidates:
            errors.append(f"selection.k: {k} is larger than tasks.{name}.sizes.candidates ({candidates})")
    for kind in ("dpp", "mdl", "cone"):
        shortlist = (selection.get(kind) or {}).get("candidates", 30)
        if kind in selection.get("strategies", []) and shortlist < k:
            errors.append(f"selection.{kind}.candidates: {shortlist} is smaller than selection.k ({k})")
    if "activation" not in selection.get("strategies", ["activation"]):
        return errors
    metrics = (config.get("report") or {}).get("quality_metrics", ["accuracy", "gold_logprob"])
    best_metric = selection.get("best_layer_metric", "accuracy")
    seen = set()
    entries = selection.get("activation", [{"feature": "mean", "layer": "best", "mask": "causal", "site": "mlp_out"}])
    for i, entry in enumerate(entries):
        where = f"selection.activation.{i}"
        if entry["site"] not in dumps.get(entry["mask"], []):
            errors.append(f"{where}: {entry['mask']}/{entry['site']} is not dumped (add it under `dumps`)")
        if entry.get("lens") == "sae":
            sae = config.get("sae") or {}
            if [entry["mask"], entry["site"]] not in [list(p) for p in sae.get("stores", [["causal", "mlp_out"]])]:
                errors.append(f"{where}: the SAE lens does not read {entry['mask']}/{entry['site']} (add it to sae.stores)")
            missing = sorted(set(config.get("tasks") or {}) - set(sae["tasks"])) if sae.get("tasks") is not None else []
            if missing:
                errors.append(f"{where}: the SAE lens does not run on {', '.join(missing)} (sae.tasks)")
        if entry["layer"] == "best" and best_metric not in metrics:
            errors.append(
                f"{where}: layer 'best' ranks layers by |rho| with selection.best_layer_metric ({best_metric}), "
                f"which is not in report.quality_metrics ({', '.join(metrics)})"
            )
        key = tuple(entry.get(f, "moments") for f in ("feature", "layer", "mask", "site", "lens"))
        if key in seen:
            errors.append(f"{where}: repeats an earlier entry")
        seen.add(key)
    return errors


# Generation reads a numeric final answer; only GSM8K records carry one, and they carry no options.
GENERATIVE_FORMATS = {"gsm8k"}


def _kind_errors(name: str, task: dict) -> list[str]:
    """A task's kind against its record formats and its `generation` block."""
    errors = []
    kind = task.get("kind")
    for source in ("local", "hub"):
        fmt = (task.get(source) or {}).get("format")
        if fmt is None:
            continue
        if kind == "generation" and fmt not in GENERATIVE_FORMATS:
            errors.append(
                f"tasks.{name}.{source}.format: {fmt!r} has no numeric answers to generate; "
                f"kind `generation` reads {', '.join(sorted(GENERATIVE_FORMATS))}"
            )
        if kind != "generation" and fmt in GENERATIVE_FORMATS:
            errors.append(f"tasks.{name}.{source}.format: {fmt!r} records have no options; use kind `generation`")
    if "generation" in task and kind != "generation":
        errors.append(f"tasks.{name}.generation: only a task of kind `generation` generates (this one is {kind})")
    return errors


def _source_errors(name: str, task: dict) -> list[str]:
    """A `fields` source names its input template and label words; a `pattern` compiles,
    has named groups, and those groups are the fields the templates ask for."""
    errors = []
    for source in ("local", "hub"):
        spec = task.get(source)
        if not isinstance(spec, dict):
            continue
        key = f"tasks.{name}.{source}"
        groups = None
        if spec.get("pattern") is not None:
            try:
                groups = set(re.compile(spec["pattern"]).groupindex)
            except re.error as err:
                errors.append(f"{key}.pattern: not a valid regular expression ({err})")
            else:
                if not groups:
                    errors.append(f"{key}.pattern: has no named groups (?P<name>...); they are the fields of each line")
        if spec.get("format") != "fields":
            continue
        if "input" not in spec:
            errors.append(
                f"{key}.input: format `fields` needs an input template over the record's fields "
                f"(e.g. \"Question: {{question}}\")"
            )
        else:
            try:
                asked = template_fields(spec["input"])
            except ValueError as err:
                errors.append(f"{key}.input: not a valid template ({err})")
                asked = None
            if asked is not None and not asked:
                errors.append(f"{key}.input: names no field of the record (e.g. \"Question: {{question}}\")")
            if asked and groups:
                for field in sorted(asked - groups):
                    errors.append(
                        f"{key}.input: placeholder {{{field}}} is not a group of {key}.pattern "
                        f"(its groups: {', '.join(sorted(groups))})"
                    )
        if "label_words" not in spec:
            errors.append(
                f"{key}.label_words: format `fields` needs the label words, the options each query is scored on "
                f"(a list, indexed by an integer label, or a mapping raw label -> word)"
            )
        label = spec.get("label", "label")
        if groups and label not in groups:
            errors.append(f"{key}.label: {label!r} is not a group of {key}.pattern (its groups: {', '.join(sorted(groups))})")
    return errors


def check_config(config: dict, schema_path: str | Path) -> None:
    schema = yaml.safe_load(Path(schema_path).read_text())
    errors = schema_errors(config, schema)
    if not errors:
        errors = semantic_errors(config)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
