"""The workflow on a real SLURM cluster, through `--profile profiles/slurm` and Snakemake's
SLURM executor plugin, gives exactly the outputs of a local run of the same config.

The cluster is one node on localhost (tests/slurm_cluster.py). Where SLURM cannot be installed
this test skips and says why; under CI (`CI` set) it fails instead, so a green CI run always
means the cluster path ran.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import yaml
import zarr
from polars.testing import assert_frame_equal

from conftest import REPO, make_workspace, snakemake, tiny_config
from slurm_cluster import PARTITION, Cluster, SlurmUnavailable, install

pytestmark = pytest.mark.slow

GPU_RULES = {"dump_activations", "score_quality", "controls", "dump_sae_pool", "train_sae"}
# Status polling for a cluster whose jobs take seconds: the plugin's defaults (first check
# after 40 s, then 10 s more per check while nothing finishes) suit hour-long jobs. Without
# an accounting database, job states come from squeue (finished jobs stay listed for MinJobAge).
FAST_POLLING = (
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "1",
    "--seconds-between-status-checks", "1",
)


def unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"SLURM test cannot run under CI: {reason}")
    pytest.skip(f"SLURM test needs a local SLURM cluster: {reason}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        unavailable("snakemake-executor-plugin-slurm is not installed (pip install -e '.[test]')")
    try:
        install()
    except SlurmUnavailable as err:
        unavailable(str(err))
    # A short path: munge's socket path must fit in a Unix socket address.
    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        try:
            cluster.start()
        except SlurmUnavailable as err:
            unavailable(str(err))
        yield cluster
    finally:
        cluster.stop()


def slurm_config(model_dir, data_dir) -> dict:
    """One task, one store: few jobs. compute.gpu=1, so the model rules ask SLURM for a GPU."""
    config = tiny_config(model_dir, data_dir)
    config["tasks"] = {"sst2": config["tasks"]["sst2"]}
    config["dumps"] = {"causal": ["mlp_out"]}
    config["compute"].update(gpu=1, threads=1)
    config["sae"]["layers"] = [0]  # one job per rule
    return config


def fill_in_profile(workdir, cluster: Cluster) -> dict:
    """What the README tells a user to do with profiles/slurm/config.yaml: put in the
    cluster's partitions and account. This cluster has one partition and no accounts, and
    less memory than the paper-scale requests, so each request is capped at a quarter node."""
    path = workdir / "profiles" / "slurm" / "config.yaml"
    text = path.read_text()
    placeholders = set(re.findall(r'"(<[^">]+>)"', text))
    assert placeholders == {"<cpu-partition>", "<gpu-partition>", "<account>"}, placeholders
    profile = yaml.safe_load(text)
    cap = cluster.mem_mb // 4

    def fill(resources: dict) -> dict:
        out = {}
        for key, value in resources.items():
            if key == "slurm_account":
                continue  # no accounting on this cluster
            if key == "slurm_partition":
                value = PARTITION
            if key == "mem_mb":
                value = min(value, cap)
            out[key] = value
        return out

    profile["default-resources"] = fill(profile["default-resources"])
    profile["set-resources"] = {rule: fill(res) for rule, res in profile["set-resources"].items()}
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return profile


def snakemake_on_slurm(workdir, cluster: Cluster) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", *FAST_POLLING]
    env = {**cluster.env, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        slurm_logs = "\n".join(
            f"--- {p} ---\n{p.read_text(errors='replace')[-2000:]}"
            for p in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
        )
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}\n{slurm_logs}\n{cluster.logs()}"
        )
    return done


def job_stats(log: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table a run prints first."""
    table = log.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M) if m.group(1) != "total"}


def assert_same_tables(local, remote, relpath: str) -> None:
    try:
        assert_frame_equal(pl.read_parquet(local / relpath), pl.read_parquet(remote / relpath), check_exact=True)
    except AssertionError as err:
        raise AssertionError(f"{relpath} differs between the local and the SLURM run: {err}") from None


def test_slurm_run_equals_local_run(tmp_path_factory, cluster, tiny_llama, tiny_data):
    config = slurm_config(tiny_llama, tiny_data)
    local = make_workspace(tmp_path_factory.mktemp("local"), config)
    remote = make_workspace(tmp_path_factory.mktemp("remote"), config)
    profile = fill_in_profile(remote, cluster)

    ran_locally = job_stats(snakemake(local).stderr)
    done = snakemake_on_slurm(remote, cluster)
    assert "SLURM run ID" in done.stderr
    assert job_stats(done.stderr) == ran_locally

    # Every job but the target `all` went through sbatch, once, with the profile's requests.
    jobs = cluster.jobs()
    jobs_of = {}
    for job in jobs:
        jobs_of.setdefault(re.match(r"rule_(\w+?)(_wildcards_|$)", job["Comment"]).group(1), []).append(job)
    assert {rule: len(group) for rule, group in jobs_of.items()} == {
        rule: n for rule, n in ran_locally.items() if rule != "all"
    }
    assert GPU_RULES < set(jobs_of)
    by_rule = {rule: group[0] for rule, group in jobs_of.items()}
    for rule, job in ((rule, job) for rule, group in jobs_of.items() for job in group):
        assert job["JobState"] == "COMPLETED", (rule, job["JobState"])
        assert job["Partition"] == PARTITION
        wanted = {**profile["default-resources"], **profile["set-resources"].get(rule, {})}
        assert job["MinMemoryNode"] == f"{wanted['mem_mb']}M", (rule, job["MinMemoryNode"])
        assert job["TimeLimit"] == f"{wanted['runtime'] // 60:02d}:{wanted['runtime'] % 60:02d}:00", rule
        gpus = job.get("TresPerJob", "")
        if rule in GPU_RULES:
            assert gpus == "gres:gpu:1", (rule, gpus)
        else:
            assert "gpu" not in gpus, (rule, gpus)

    # The local GPU limit of profiles/default (gpu=1) did not hold back submissions: both model
    # jobs were queued before either ended (the node has two GPUs and a core for each).
    gpu_jobs = [by_rule["dump_activations"], *jobs_of["score_quality"]]
    assert max(job["SubmitTime"] for job in gpu_jobs) < min(job["EndTime"] for job in gpu_jobs), gpu_jobs

    # The same results, to the bit.
    base = "results/tiny/sst2"
    for table in ("prompts/candidates.parquet", "prompts/quality_queries.parquet", "quality.parquet",
                  "features/causal/mlp_out.parquet", "sae_features/causal/mlp_out.parquet"):
        assert_same_tables(local, remote, f"{base}/{table}")
    assert_same_tables(local, remote, "results/report/spearman.parquet")
    assert (local / "results/report/spearman.csv").read_text() == (remote / "results/report/spearman.csv").read_text()
    assert (local / "results/report/summary.md").read_text() == (remote / "results/report/summary.md").read_text()
    stores = [zarr.open_group(w / f"{base}/activations/causal/mlp_out.zarr", mode="r") for w in (local, remote)]
    for name in ("activations", "offsets", "token_ids"):
        np.testing.assert_array_equal(stores[0][name][:], stores[1][name][:])
    assert pl.read_parquet(local / f"{base}/quality.parquet").height == config["tasks"]["sst2"]["sizes"]["candidates"]
