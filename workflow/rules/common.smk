import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

# The package is imported from this checkout (here and, via scripts/checkout.py, in every job),
# so the code hashes below describe the code that runs.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from demoscope.codehash import code_hash
from demoscope.tasks import local_files

DATA_DIR = os.path.abspath(config["data_dir"]) if config.get("data_dir") else None
MODELS = list(config["models"])
TASKS = list(config["tasks"])
MASKS = list(config["masks"])
SITES = list(config["sites"])
COMPUTE = config["compute"]

if DATA_DIR:
    for name in TASKS:
        if not local_files(config["tasks"][name], DATA_DIR):
            raise WorkflowError(
                f"data_dir={DATA_DIR}: task '{name}' reads its local source, but no "
                f"train/dev/test .jsonl files are in {Path(DATA_DIR) / config['tasks'][name]['local']['dir']}"
            )


wildcard_constraints:
    model="|".join(MODELS),
    task="|".join(TASKS),
    mask="|".join(MASKS),
    site="|".join(SITES),


def model_dir(wildcards):
    return f"resources/models/{wildcards.model}"


def task_data(wildcards):
    """The local files a task reads (none when it reads the hub)."""
    return local_files(config["tasks"][wildcards.task], DATA_DIR) if DATA_DIR else []


def report_inputs():
    return {
        "features": expand(
            "results/{model}/{task}/features/{mask}/{site}.parquet",
            model=MODELS,
            task=TASKS,
            mask=MASKS,
            site=SITES,
        ),
        "quality": expand(
            "results/{model}/{task}/quality.parquet", model=MODELS, task=TASKS
        ),
    }


def all_outputs():
    return [
        "results/report/spearman.csv",
        "results/report/summary.md",
        *expand(
            "results/figures/rho_heatmap/{model}/{task}.png", model=MODELS, task=TASKS
        ),
    ]
