"""Where every file of a run lives: the one module that builds results/ (and resources/) paths,
for the rules and for the scripts.

Each function takes the keys of its path as keyword arguments, each defaulting to its own
wildcard placeholder: called with no keys it returns the rule's pattern
(`store_table("features")` is "results/{model}/{task}/features/{mask}/{site}.parquet"), given
values a concrete path, and any mix works (`evaluation(strategy="random")` keeps `{model}` and
`{task}` as wildcards). A name that is not a file of the run (`prompts("candidate")`) fails at
once, naming the known ones; a wildcard placeholder is accepted in its place.

Standard library only: the workflow and every light job import it.
"""

from __future__ import annotations

RESULTS = "results"
RESOURCES = "resources"

# The tables build_prompts and the pools write under results/<model>/<task>/prompts/.
PROMPT_TABLES = (
    "candidates",
    "quality_queries",
    "test_queries",
    "probe_queries",
    "skipped",
    "contamination",
    "sae_pool",
    "task_vector_pool",
    "attention_calibration",
)
# One table per model and task, results/<model>/<task>/<name>.parquet.
TASK_TABLES = (
    "quality",
    "quality_by_query",
    "quality_condacc",
    "quality_condacc_by_query",
    "condacc_prompts",
    "reliability",
    "reliability_curve",
    "controls",
    "controls_correlations",
    "controls_null",
    "embeddings",
    "zero_shot",
    "task_sets",
    "task_spearman",
    "attention_heads",
)
# One table per activation store (mask, site; the attention lens's view stands for the mask),
# results/<model>/<task>/<kind>/<mask>/<site>.parquet: each lens's features, the correlations
# and the null of its share of the max-T family.
STORE_TABLES = (
    "features",
    "correlations",
    "null",
    "sae_features",
    "sae_quality",
    "sae_correlations",
    "sae_null",
    "tv_features",
    "tv_correlations",
    "tv_null",
    "attn_features",
    "attn_correlations",
    "attn_null",
)
# The run-wide tables, results/report/<name>.
REPORT_FILES = (
    "spearman.csv",
    "spearman.parquet",
    "headline.csv",
    "reliability.csv",
    "null_max.parquet",
    "summary.md",
    "summary.html",
    "config.yaml",
    "strategies.csv",
    "task_spearman.csv",
)
# The figures, results/figures/<figure>/<model>/<task>.<ext>.
FIGURES = (
    "rho_heatmap",
    "rho_by_layer",
    "strongest",
    "quality",
    "reliability",
    "massive",
    "sae_lens",
    "strategies",
)


def _known(value: str, known: tuple[str, ...], what: str) -> str:
    """`value` if it is one of `known` or a wildcard placeholder, else a ValueError."""
    if value in known or (value.startswith("{") and value.endswith("}")):
        return value
    raise ValueError(f"paths: {what} {value!r} is not a file of the run; known: {', '.join(known)}")


def _task(model: str, task: str) -> str:
    return f"{RESULTS}/{model}/{task}"


def model_dir(model: str = "{model}") -> str:
    """A model as a safetensors directory, made once by prepare_model."""
    return f"{RESOURCES}/models/{model}"


def prompts(table: str, model: str = "{model}", task: str = "{task}") -> str:
    """One of the prompt tables (PROMPT_TABLES)."""
    return f"{_task(model, task)}/prompts/{_known(table, PROMPT_TABLES, 'prompt table')}.parquet"


def task_table(name: str, model: str = "{model}", task: str = "{task}") -> str:
    """One of a model and task's own tables (TASK_TABLES)."""
    return f"{_task(model, task)}/{_known(name, TASK_TABLES, 'task table')}.parquet"


def quality_shard(
    name: str, model: str = "{model}", task: str = "{task}", shard: str = "{shard}"
) -> str:
    """One score_quality job's share of a quality table (`quality` or `quality_by_query`):
    the candidates of shard `shard`, which merge_quality concatenates."""
    table = _known(name, ("quality", "quality_by_query"), "quality shard table")
    return f"{_task(model, task)}/quality_shards/{table}/{shard}.parquet"


def activations(model: str = "{model}", task: str = "{task}", mask: str = "{mask}", site: str = "{site}") -> str:
    """The activation store of the candidates under one mask at one site."""
    return f"{_task(model, task)}/activations/{mask}/{site}.zarr"


def store_table(
    kind: str, model: str = "{model}", task: str = "{task}", mask: str = "{mask}", site: str = "{site}"
) -> str:
    """One of a store's tables (STORE_TABLES): a lens's features, correlations or null."""
    return f"{_task(model, task)}/{_known(kind, STORE_TABLES, 'store table')}/{mask}/{site}.parquet"


def sae_pool_store(model: str = "{model}", task: str = "{task}", site: str = "{site}") -> str:
    """The SAE pool's activations at one site (always the causal mask)."""
    return f"{_task(model, task)}/sae/pool/causal/{site}.zarr"


def sae_dir(model: str = "{model}", task: str = "{task}", site: str = "{site}", layer: str = "{layer}") -> str:
    """One trained SAE's directory (sae.safetensors, sae.json)."""
    return f"{_task(model, task)}/sae/{site}/layer_{layer}"


def sae_checkpoint(model: str = "{model}", task: str = "{task}", site: str = "{site}", layer: str = "{layer}") -> str:
    """A training SAE's checkpoint: beside its directory, not in it, because Snakemake removes
    a failed job's outputs and the checkpoint must outlive a killed job for the rerun to
    resume from it."""
    return sae_dir(model, task, site, layer) + ".checkpoint.pt"


def selection(model: str = "{model}", task: str = "{task}", strategy: str = "{strategy}") -> str:
    """One strategy instance's demonstrations."""
    return f"{_task(model, task)}/selection/{strategy}.parquet"


def sets(ext: str, model: str = "{model}", task: str = "{task}", strategy: str = "{strategy}") -> str:
    """One strategy instance's sets file: ext `jsonl` or `lm_eval.json`."""
    return f"{_task(model, task)}/sets/{strategy}.{_known(ext, ('jsonl', 'lm_eval.json'), 'sets format')}"


def evaluation(model: str = "{model}", task: str = "{task}", strategy: str = "{strategy}") -> str:
    """One strategy instance's test-query outcomes."""
    return f"{_task(model, task)}/evaluation/{strategy}.parquet"


def report_file(name: str) -> str:
    """One of the run-wide tables (REPORT_FILES)."""
    return f"{RESULTS}/report/{_known(name, REPORT_FILES, 'report file')}"


def figure(name: str, model: str = "{model}", task: str = "{task}", ext: str = "{ext}") -> str:
    """One figure of one model and task (FIGURES), as png or pdf."""
    return f"{RESULTS}/figures/{_known(name, FIGURES, 'figure')}/{model}/{task}.{ext}"


def _job(rule: str, wildcards: tuple[str, ...]) -> str:
    """A job's own path below logs/ or benchmarks/: the rule, then its wildcards in the order
    given (`layer` as layer_<L>), or the rule's name again for a rule without wildcards."""
    parts = [f"layer_{{{name}}}" if name == "layer" else f"{{{name}}}" for name in wildcards]
    return f"{rule}/{'/'.join(parts) if parts else rule}"


def log(rule: str, *wildcards: str) -> str:
    """A job's log: `log("correlate", "model", "task", "mask", "site")` is
    results/logs/correlate/{model}/{task}/{mask}/{site}.log."""
    return f"{RESULTS}/logs/{_job(rule, wildcards)}.log"


def benchmark(rule: str, *wildcards: str) -> str:
    """A job's Snakemake benchmark file, beside its log's path under results/benchmarks/."""
    return f"{RESULTS}/benchmarks/{_job(rule, wildcards)}.tsv"
