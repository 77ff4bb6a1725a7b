import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The package is imported from this checkout (here and, via scripts/checkout.py, in every job),
# so the code hashes below describe the code that runs.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from demoscope.config import ConfigError, check_config

# Our check names the key and its allowed values; Snakemake's validate then fills defaults.
check_config(config, workflow.source_path("../schemas/config.schema.yaml"))
validate(config, schema="../schemas/config.schema.yaml")

from demoscope import paths
from demoscope.codehash import code_hash, script_code
from demoscope.lenses.registry import (
    ATTENTION_FEATURES,
    CONTROL_FEATURES,
    LENS_TABLES,
    SAE_FEATURES,
    TASK_VECTOR_FEATURES,
)
from demoscope.activations.mask_registry import mask as mask_entry
from demoscope.quality.definitions import definition as quality_definition
from demoscope.selection.strategies import instances, strategy
from demoscope.data.tasks import generation_settings, local_files, source_errors

DATA_DIR = os.path.abspath(config["data_dir"]) if config.get("data_dir") else None
MODELS = list(config["models"])
TASKS = list(config["tasks"])
DUMPS = [(mask, site) for mask, sites in config["dumps"].items() for site in sites]
MASKS = list(config["dumps"])
SITES = sorted({site for _, site in DUMPS})
COMPUTE = config["compute"]
# The order of jobs on a few cores (README "Timing", BENCHMARKS.md): of the jobs ready to run,
# Snakemake starts those of highest priority first. The quality jobs are the longest and start
# first; then the jobs on the path from the dumps to the last evaluation (features,
# correlations, selection; the embeddings and zero-shot scores the early selections read); then
# the other model jobs, the longest first (`evaluate` and `task_sets` about a minute each on
# this CPU, then `controls` and the SAE chain), so that the run does not end on one long job
# beside an idle core; light jobs (figures, report) last, at 0.
PRIORITY = {
    **dict.fromkeys(("score_quality", "merge_quality", "condacc_quality"), 10),
    **dict.fromkeys(
        (
            "dump_activations",
            "compute_features",
            "correlate",
            "select",
            "zero_shot",
            "embed",
            "evaluate_after_quality",
        ),
        8,
    ),
    **dict.fromkeys(("evaluate", "task_sets"), 7),
    **dict.fromkeys(
        ("controls", "sae_pool", "dump_sae_pool", "train_sae", "sae_features"), 6
    ),
}
SAE = config["sae"]
SAE_STORES = [tuple(pair) for pair in SAE["stores"]]
SAE_TASKS = TASKS if SAE["tasks"] is None else list(SAE["tasks"])
SELECTION = config["selection"]
QUALITY = config["quality"]
ATTENTION_TASKS = (
    TASKS
    if config["attention"]["tasks"] is None
    else list(config["attention"]["tasks"])
)
TV_TASKS = (
    TASKS
    if config["task_vector"]["tasks"] is None
    else list(config["task_vector"]["tasks"])
)
# Strategy instance name -> its own settings (demoscope/selection/strategies.py names them).
STRATEGIES = instances(SELECTION)
# The selection stage runs for the tasks that have test queries.
SELECT_TASKS = [
    t for t in TASKS if config["tasks"][t]["sizes"].get("test_queries", 0) > 0
]

if DATA_DIR:
    # Each local source against its files (one per split, not empty, the fields its
    # templates name), before any job.
    SOURCE_ERRORS = [
        error
        for name in TASKS
        for error in source_errors(name, config["tasks"][name], DATA_DIR)
    ]
    if SOURCE_ERRORS:
        raise ConfigError(f"data_dir={DATA_DIR}:\n  " + "\n  ".join(SOURCE_ERRORS))


wildcard_constraints:
    model="|".join(MODELS),
    task="|".join(TASKS),
    mask="|".join(MASKS),
    site="|".join(SITES),
    layer=r"\d+",
    shard=r"\d+",
    strategy="|".join(re.escape(name) for name in STRATEGIES),


def canonical(value):
    """Dicts with keys sorted at every depth: Snakemake compares params as text, and
    re-ordering keys in a config file must not rerun anything."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def task_config(wildcards):
    """What sampling and rendering read: decoding settings are left out, so changing them
    reruns the quality scoring, not the prompts and every dump after them."""
    task = dict(config["tasks"][wildcards.task])
    # Nor does the task side's number of random sets.
    task["sizes"] = {k: v for k, v in task["sizes"].items() if k != "task_sets"}
    return canonical({key: value for key, value in task.items() if key != "generation"})


def template_config(wildcards):
    return canonical(config["tasks"][wildcards.task].get("template", {}))


def generation_config(wildcards):
    """A generation task's decoding settings, defaults filled; empty for the other kinds, so
    that only a generation task's scoring reruns when they change."""
    task = config["tasks"][wildcards.task]
    return canonical(generation_settings(task)) if task["kind"] == "generation" else {}


def model_dir(wildcards):
    return paths.model_dir(wildcards.model)


def task_data(wildcards):
    """The local files a task reads (none when it reads the hub)."""
    return local_files(config["tasks"][wildcards.task], DATA_DIR) if DATA_DIR else []


def mask_inputs(wildcards):
    """The prompt tables the mask reads besides the candidates (mask_registry.py)."""
    return {
        name: paths.prompts(table, wildcards.model, wildcards.task)
        for name, table in mask_entry(wildcards.mask).tables(config).items()
    }


def mask_context(wildcards):
    """Only what the dump's own strategy uses, so other settings never rerun it."""
    return canonical(mask_entry(wildcards.mask).context(config, wildcards.task))


def dump_rules(dumps):
    """One forward fills every site of a mask, but a rule's outputs are fixed: the dump rule's
    name -> (sites, masks dumping exactly those sites), in `dumps` order (rules/activations.smk).
    """
    groups = {}
    for mask, sites in dumps.items():
        groups.setdefault(tuple(sorted(set(sites))), []).append(mask)
    if len(groups) == 1:
        return {"dump_activations": next(iter(groups.items()))}
    return {
        "dump_activations_" + "_".join(sites): (sites, masks)
        for sites, masks in groups.items()
    }


DUMP_RULES = dump_rules(config["dumps"])


def store_features(model, task):
    """The feature tables of every dumped (mask, site) of one model and task."""
    return [
        paths.store_table("features", model, task, mask, site) for mask, site in DUMPS
    ]


def massive_store(wildcards):
    """The store the massive-activation figure reads, as {mask, site}: the residual stream
    under the causal mask, where Sun et al. measured, else the causal MLP output, else the
    first store dumped (the residual stream first)."""
    preferred = [("causal", "resid"), ("causal", "mlp_out")]
    preferred += sorted(DUMPS, key=lambda dump: dump[1] != "resid")
    mask, site = next(dump for dump in preferred if dump in DUMPS)
    return {"mask": mask, "site": site}


def massive_features(wildcards):
    return paths.store_table(
        "features", wildcards.model, wildcards.task, **massive_store(wildcards)
    )


def quality_table(model, task):
    """The quality every lens is correlated against: 1-shot (`quality.parquet`) or CondAcc
    (`quality_condacc.parquet`), as `quality.definition` says; both have the same columns.
    """
    name = quality_definition(QUALITY["definition"]).table
    return paths.task_table(name, model, task)


def quality_shards(name):
    """Input function: every score_quality shard's table `name` of a model and task."""

    def shard_tables(wildcards):
        return [
            paths.quality_shard(name, wildcards.model, wildcards.task, str(shard))
            for shard in range(COMPUTE["quality_shards"])
        ]

    return shard_tables


def quality_input(wildcards):
    return quality_table(wildcards.model, wildcards.task)


def quality_by_query_input(wildcards):
    """The candidate x query outcomes behind `quality_table` (CondAcc's averaged over each
    candidate's prompts), which reliability reads."""
    name = quality_definition(QUALITY["definition"]).table
    return paths.task_table(f"{name}_by_query", wildcards.model, wildcards.task)


def tv_outputs(kind, model, task):
    """The task-vector lens's table (kind tv_features or tv_correlations); none off its tasks."""
    return (
        [paths.store_table(kind, model, task, "prompt", "resid")]
        if task in TV_TASKS
        else []
    )


def attention_outputs(kind, model, task):
    """The attention lens's tables (kind attn_features or attn_correlations), one per view."""
    if task not in ATTENTION_TASKS:
        return []
    return [
        paths.store_table(kind, model, task, view, "attn")
        for view in ATTENTION_FEATURES
    ]


def balanced(task):
    """The k demonstrations are label-balanced only for classification tasks."""
    return (
        SELECTION["label_balance"] and config["tasks"][task]["kind"] == "classification"
    )


def select_signals(spec):
    """The signal inputs of a strategy instance's select job, by name: its registry entry's
    `reads`, with `correlations` after `features` when its layer is `best` (the best-layer
    shortcut reads the lens's correlations with quality)."""
    signals = []
    for signal in strategy(spec["kind"]).reads:
        signals.append(signal)
        if signal == "features" and spec["layer"] == "best":
            signals.append("correlations")
    return signals


def select_inputs(wildcards):
    """Only the signals this strategy instance reads (select_signals): adding a strategy never
    reruns another. Every select job reads the test queries' label-free columns, for the
    contamination guard and the sets files."""
    spec = STRATEGIES[wildcards.strategy]
    base = {"model": wildcards.model, "task": wildcards.task}
    inputs = {
        "candidates": paths.prompts("candidates", **base),
        "queries": paths.prompts("test_queries", **base),
    }
    for signal in select_signals(spec):
        if signal in ("features", "correlations"):
            # The lens's table of one store.
            folder = dict(zip(("features", "correlations"), LENS_TABLES[spec["lens"]]))
            inputs[signal] = paths.store_table(
                folder[signal], **base, mask=spec["mask"], site=spec["site"]
            )
        else:
            inputs[signal] = {
                "quality": quality_table(wildcards.model, wildcards.task),
                "embeddings": paths.task_table("embeddings", **base),
                "zero_shot": paths.task_table("zero_shot", **base),
                "model": model_dir(wildcards),
            }[signal]
    return inputs


def waits_for_quality(name):
    """Whether the selection of a strategy instance reads example quality: directly (the
    oracle) or through the correlations that pick its best layer."""
    return bool({"quality", "correlations"} & set(select_signals(STRATEGIES[name])))


def strategy_names(model):
    """A regex of the strategy instances whose select job loads the model (model=True) or
    does not: the rules `select_model` and `select` split the instances between them."""
    names = [
        re.escape(name)
        for name, spec in STRATEGIES.items()
        if strategy(spec["kind"]).loads_model == model
    ]
    return "|".join(names) if names else "(?!)"


def select_params(wildcards):
    spec = STRATEGIES[wildcards.strategy]
    entry = strategy(spec["kind"])
    own = {**spec, "k": SELECTION["k"], "label_balance": balanced(wildcards.task)}
    if entry.run_seed:
        own["run_seed"] = config["seed"]
    if entry.loads_model:
        own["dtype"] = config["models"][wildcards.model].get("dtype", COMPUTE["dtype"])
        own["template"] = template_config(wildcards)
    return canonical(own)


def report_selection_keys():
    """What report_selection's inputs are, in their order (the script never parses a path):
    the (model, task, strategy) of each evaluation table, the (model, task) of each
    task_spearman table."""
    return {
        "evaluations": [
            {"model": model, "task": task, "strategy": strategy}
            for model in MODELS
            for task in SELECT_TASKS
            for strategy in STRATEGIES
        ],
        "task_spearman": [
            {"model": model, "task": task} for model in MODELS for task in SELECT_TASKS
        ],
    }


def evaluation_tables():
    return [paths.evaluation(**k) for k in report_selection_keys()["evaluations"]]


def task_spearman_tables():
    return [
        paths.task_table("task_spearman", **k)
        for k in report_selection_keys()["task_spearman"]
    ]


def report_stores():
    """Every (model, task, lens table, null table, keys) the report reads, in one order (names
    sorted, so that re-ordering a config file reruns nothing): the
    activation stores, the SAE lens's stores, the task-vector and attention lenses' stores and
    each task's controls. The report receives the keys as a parameter, so it never parses a
    path."""
    stores = []
    for model in sorted(MODELS):
        for task in sorted(TASKS):
            for mask, site in DUMPS:
                keys = {"model": model, "task": task, "mask": mask, "site": site}
                stores.append(
                    (
                        paths.store_table("correlations", **keys),
                        paths.store_table("null", **keys),
                        keys,
                    )
                )
            for mask, site in sae_stores(model, task):
                keys = {"model": model, "task": task, "mask": mask, "site": site}
                stores.append(
                    (
                        paths.store_table("sae_correlations", **keys),
                        paths.store_table("sae_null", **keys),
                        keys,
                    )
                )
            # The task-vector lens (mask `prompt`, site `resid`) and the attention lens (one
            # store per view, site `attn`), on the tasks they run on (docs/lenses.md).
            for rho in tv_outputs("tv_correlations", model, task):
                keys = {"model": model, "task": task, "mask": "prompt", "site": "resid"}
                stores.append((rho, paths.store_table("tv_null", **keys), keys))
            for view in ATTENTION_FEATURES if task in ATTENTION_TASKS else []:
                keys = {"model": model, "task": task, "mask": view, "site": "attn"}
                stores.append(
                    (
                        paths.store_table("attn_correlations", **keys),
                        paths.store_table("attn_null", **keys),
                        keys,
                    )
                )
            keys = {"model": model, "task": task, "mask": None, "site": None}
            stores.append(
                (
                    paths.task_table("controls_correlations", model, task),
                    paths.task_table("controls_null", model, task),
                    keys,
                )
            )
    return stores


def report_keys():
    """What the report's inputs are, in their order (the report never parses a path)."""
    per_task = [
        {"model": model, "task": task}
        for model in sorted(MODELS)
        for task in sorted(TASKS)
    ]
    return {
        "stores": [keys for _, _, keys in report_stores()],
        "tasks": per_task,
        "sae_quality": [
            {"model": model, "task": task, "mask": mask, "site": site}
            for model in sorted(MODELS)
            for task in sorted(TASKS)
            for mask, site in sae_stores(model, task)
        ],
        "task_spearman": [
            {"model": model, "task": task}
            for model in sorted(MODELS)
            for task in sorted(SELECT_TASKS)
        ],
    }


def report_inputs():
    per_task = [
        {"model": model, "task": task}
        for model in sorted(MODELS)
        for task in sorted(TASKS)
    ]
    return {
        "task_spearman": [
            paths.task_table("task_spearman", **k)
            for k in report_keys()["task_spearman"]
        ],
        "correlations": [rho for rho, _, _ in report_stores()],
        "nulls": [null for _, null, _ in report_stores()],
        # What every lens is correlated against (quality.definition).
        "quality": [quality_table(k["model"], k["task"]) for k in per_task],
        "reliability": [paths.task_table("reliability", **k) for k in per_task],
        "skipped": [paths.prompts("skipped", **k) for k in per_task],
        "contamination": [paths.prompts("contamination", **k) for k in per_task],
        "sae_quality": [
            path
            for model in sorted(MODELS)
            for task in sorted(TASKS)
            for path in sae_outputs("sae_quality", model, task)
        ],
    }


def sae_stores(model, task):
    """The (mask, site) stores the SAE lens reads for one model and task (none when the
    task is not in `sae.tasks`)."""
    return SAE_STORES if task in SAE_TASKS else []


def sae_directory(model, task, site, layer):
    """A layer's SAE: the model's published weights when `sae.pretrained` names a folder for
    it (demoscope's, SAELens's or sparsify's layout, docs/sae.md), else the one `train_sae`
    trains on this task's pool."""
    if model in SAE["pretrained"]:
        # <site>/layer_<L>, or the SAELens / sparsify folder whose hook name maps there.
        # Imported here: it imports torch, which a run without published SAEs need not load.
        from demoscope.lenses.sae.published import locate

        return locate(SAE["pretrained"][model], site, int(layer))
    return paths.sae_dir(model, task, site, layer)


def sae_directories(wildcards):
    return [
        sae_directory(wildcards.model, wildcards.task, wildcards.site, layer)
        for layer in SAE["layers"]
    ]


def sae_training(wildcards):
    """The settings that change a trained SAE (checkpoint_every does not)."""
    keys = "expansion k tied steps batch_tokens lr seed auxk skip_first".split()
    return canonical({key: SAE[key] for key in keys})


def sae_outputs(kind, model, task):
    """One SAE-lens table per store: kind is sae_features, sae_quality or sae_correlations."""
    return [
        paths.store_table(kind, model, task, mask, site)
        for mask, site in sae_stores(model, task)
    ]


FIGURES = [
    "rho_heatmap",
    "rho_by_layer",
    "strongest",
    "quality",
    "reliability",
    "massive",
    "sae_lens",
]


def selection_outputs():
    """The selection stage's tables and figures (none when no task has test queries)."""
    if not SELECT_TASKS:
        return []
    figures = [
        paths.figure("strategies", model, task, ext)
        for model in MODELS
        for task in SELECT_TASKS
        for ext in ["png", "pdf"]
    ]
    return [
        paths.report_file("strategies.csv"),
        paths.report_file("task_spearman.csv"),
        *(figures if STRATEGIES else []),
    ]


def contamination_tables():
    """Per model and task, the candidates that duplicate a test or quality query."""
    return [
        paths.prompts("contamination", model, task)
        for model in MODELS
        for task in TASKS
    ]


def paper_outputs():
    """Every table and figure of the paper."""
    return [
        *selection_outputs(),
        *contamination_tables(),
        paths.report_file("spearman.csv"),
        paths.report_file("headline.csv"),
        paths.report_file("summary.md"),
        paths.report_file("summary.html"),
        paths.report_file("config.yaml"),
        *(
            paths.figure(figure, model, task, ext)
            for figure in FIGURES
            for model in MODELS
            for task in TASKS
            for ext in ["png", "pdf"]
        ),
    ]
