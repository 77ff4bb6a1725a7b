"""Planning at paper scale and the profiles, all as dry runs: no model, no data, no network."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, SHARED_DATA, gsm8k_rows, make_workspace, mc_rows, sentiment_rows, write_jsonl

PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
GPU_RULES = {
    "dump_activations", "score_quality", "dump_sae_pool", "train_sae", "embed", "zero_shot", "evaluate", "task_sets",
    "evaluate_after_quality",
    "select_model", "controls", "condacc_quality", "task_vector", "attention_lens",
}
# Planning must not reach the network: the hub libraries are told to stay offline, and
# anything that still tries HTTP(S) meets a closed port and fails the dry run.
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
}


def dry_run(workdir, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-n", *args]
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env={**os.environ, **OFFLINE})
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def job_counts(out: str) -> dict[str, int]:
    table = out.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M) if m.group(1) != "total"}


def planned_jobs(out: str) -> list[dict]:
    """Each planned job's rule, wildcards, threads and resources, from the dry run's listing."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:\n)", out):
        head = re.match(r"rule (\w+):\n", block)
        if not head:
            continue
        job = {"rule": head.group(1)}
        for key in ("wildcards", "threads", "resources"):
            m = re.search(rf"^    {key}: (.*)$", block, re.M)
            job[key] = m.group(1) if m else ""
        job["res"] = dict(item.split("=", 1) for item in job["resources"].split(", ") if "=" in item)
        jobs.append(job)
    return jobs


@pytest.fixture
def paper_workspace(tmp_path):
    workdir = make_workspace(tmp_path, yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    shutil.copy(REPO / "config" / "paper.yaml", workdir / "config" / "paper.yaml")
    return workdir


def expected_paper_counts() -> dict[str, int]:
    models, tasks = len(PAPER["models"]), len(PAPER["tasks"])
    stores = models * tasks * sum(len(sites) for sites in PAPER["dumps"].values())
    # One dump job per mask fills all its sites; every mask dumps the same sites, so one rule.
    masks = len(PAPER["dumps"])
    return {
        "prepare_model": models,
        "build_prompts": models * tasks,
        "dump_activations": models * tasks * masks,
        "compute_features": stores,
        # config/paper.yaml defines quality as CondAcc: no one-shot scoring (docs/lenses.md).
        "condacc_quality": models * tasks,
        "task_vector": models * len(PAPER["task_vector"]["tasks"]),
        "attention_lens": models * len(PAPER["attention"]["tasks"]),
        "report": 1,
        "plot_rho_heatmap": models * tasks,
        # The selection stage: 17 strategy instances (3 random seeds, 2 activation entries x
        # top/bottom, oracle, similarity, diversity, 2 uncertainty ends, vote-k, and the
        # retrievers bm25, dpp, mdl, cone).
        "embed": models * tasks,
        "zero_shot": models * tasks,
        "contamination": models * tasks,
        "select": models * tasks * 15,
        "select_model": models * tasks * 2,  # MDL and ConE load the model
        # One job evaluates the 12 instances that read no quality, one the 5 that wait for it.
        "evaluate": models * tasks,
        "evaluate_after_quality": models * tasks,
        "task_sets": models * tasks,
        "task_correlation": models * tasks,
        "report_selection": 1,
        "plot_strategies": models * tasks,
        "all": 1,
    }


def test_paper_config_is_the_study():
    assert {m["source"] for m in PAPER["models"].values()} == {"meta-llama/Llama-3.2-3B", "Qwen/Qwen2.5-3B"}
    assert {t["hub"]["id"] for t in PAPER["tasks"].values()} == {
        "google/boolq", "allenai/ai2_arc", "allenai/openbookqa", "openai/gsm8k"
    }
    assert {n: t["kind"] for n, t in PAPER["tasks"].items()} == {
        "boolq": "classification", "arc_challenge": "multiple_choice", "openbookqa": "multiple_choice", "gsm8k": "generation"
    }
    assert PAPER["tasks"]["arc_challenge"]["sizes"]["candidates"] == 1119
    assert {t["sizes"]["candidates"] for n, t in PAPER["tasks"].items() if n != "arc_challenge"} == {1000}
    assert PAPER["dumps"] == {m: ["mlp_out", "resid"] for m in ("causal", "instruction", "bidirectional", "packed", "query")}
    assert PAPER["compute"]["dtype"] == "bfloat16" and PAPER["compute"]["gpu"] == 1


def test_paper_config_plans_offline_without_the_default_run(paper_workspace):
    done = dry_run(paper_workspace, "--configfile", "config/paper.yaml")
    counts = job_counts(done.stdout)
    assert {rule: counts.get(rule) for rule in expected_paper_counts()} == expected_paper_counts()
    assert counts["dump_activations"] == 40  # 2 models x 4 tasks x 5 strategies, both sites at once
    assert counts["compute_features"] == 80  # one per store: x 2 sites
    # Nothing of config/config.yaml joined the run.
    assert "smollm2" not in done.stdout and "sst2" not in done.stdout
    tasks = {job["wildcards"] for job in planned_jobs(done.stdout) if job["rule"] == "build_prompts"}
    assert tasks == {f"model={m}, task={t}" for m in PAPER["models"] for t in PAPER["tasks"]}
    assert_gsm8k_for_both_models(done.stdout)


def assert_gsm8k_for_both_models(out: str) -> None:
    """The generative task runs the whole study for each model: prompts, dumps, quality by
    greedy decoding (CondAcc's k-shot prompts in config/paper.yaml), and the selection stage on
    its test queries."""
    jobs = planned_jobs(out)
    for model in ("llama-3.2-3b", "qwen2.5-3b"):
        mine = [job for job in jobs if f"model={model}" in job["wildcards"] and "task=gsm8k" in job["wildcards"]]
        rules = {job["rule"] for job in mine}
        assert {"build_prompts", "condacc_quality", "dump_activations", "zero_shot", "task_sets", "evaluate",
                "evaluate_after_quality"} <= rules, model
        # As many dump jobs (one per mask) and evaluate jobs (one of each) as a classification task of the same model.
        for rule in ("dump_activations", "evaluate", "evaluate_after_quality"):
            boolq = [job for job in jobs if job["rule"] == rule and job["wildcards"].startswith(f"model={model}, task=boolq")]
            assert sum(job["rule"] == rule for job in mine) == len(boolq) > 0, (model, rule)


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"the offline data folder {SHARED_DATA} is not beside this checkout")
def test_paper_config_plans_gsm8k_on_the_offline_data(paper_workspace):
    done = dry_run(paper_workspace, "--configfile", "config/paper.yaml", "--config", f"data_dir={SHARED_DATA}")
    assert_gsm8k_for_both_models(done.stdout)
    assert str(SHARED_DATA / "gsm8k" / "train.jsonl") in done.stdout
    assert not (paper_workspace / "resources").exists()  # planned without the models


def test_config_on_the_command_line_still_applies(paper_workspace, tmp_path):
    # The default config is still read when no --configfile is given, and --config lands on top:
    # a data_dir without the default tasks' files stops the plan with a message that names it.
    empty = tmp_path / "empty"
    empty.mkdir()
    done = dry_run(paper_workspace, "--config", f"data_dir={empty}", check=False)
    assert done.returncode != 0 and f"data_dir={empty}:\n  tasks.sst2.local: the train split's file" in done.stdout + done.stderr
    assert "Job stats" in dry_run(paper_workspace).stdout  # the default run plans

    # --config also lands on top of --configfile: the paper config reading an offline folder.
    data = tmp_path / "data"
    for split, n in (("train", 12), ("dev", 6), ("test", 6)):
        write_jsonl(data / "boolq" / f"{split}.jsonl", [dict(r, task="boolq") for r in sentiment_rows(n, n)])
        write_jsonl(data / "arc_challenge" / f"{split}.jsonl", mc_rows(n, n, split))
        write_jsonl(data / "openbookqa" / f"{split}.jsonl", mc_rows(n, n, split))
        if split != "dev":
            write_jsonl(data / "gsm8k" / f"{split}.jsonl", gsm8k_rows(n, n))
    done = dry_run(paper_workspace, "--configfile", "config/paper.yaml", "--config", f"data_dir={data}")
    counts = job_counts(done.stdout)
    assert {rule: counts.get(rule) for rule in expected_paper_counts()} == expected_paper_counts()
    assert str(data / "openbookqa" / "train.jsonl") in done.stdout


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"the offline data folder {SHARED_DATA} is not beside this checkout")
def test_breadth_overlay_adds_its_tasks_to_the_default_run(paper_workspace):
    """config/breadth.yaml named after config/config.yaml merges over it (README): the default
    run's SST-2 keeps its whole plan and ARC-Challenge and GSM8K join it, without a selection stage."""
    shutil.copy(REPO / "config" / "breadth.yaml", paper_workspace / "config" / "breadth.yaml")
    default = planned_jobs(dry_run(paper_workspace, "--config", f"data_dir={SHARED_DATA}").stdout)
    assert {job["wildcards"] for job in default if job["rule"] == "build_prompts"} == {"model=smollm2-135m, task=sst2"}
    done = dry_run(paper_workspace, "--configfile", "config/config.yaml", "config/breadth.yaml",
                   "--config", f"data_dir={SHARED_DATA}")
    jobs = planned_jobs(done.stdout)
    tasks = {job["wildcards"] for job in jobs if job["rule"] == "build_prompts"}
    assert tasks == {f"model=smollm2-135m, task={t}" for t in ("sst2", "arc_challenge", "gsm8k")}
    sst2 = lambda plan: sorted((j["rule"], j["wildcards"]) for j in plan if "task=sst2" in j["wildcards"])  # noqa: E731
    assert sst2(jobs) == sst2(default)
    for task in ("arc_challenge", "gsm8k"):
        rules = {job["rule"] for job in jobs if f"task={task}" in job["wildcards"]}
        assert {"score_quality", "controls", "correlate"} <= rules, task
        assert any(rule.startswith("dump_activations") for rule in rules), task  # named by site list
        assert not rules & {"evaluate", "task_sets", "select"}, task


def test_slurm_profile_puts_gpu_requests_on_the_model_rules(paper_workspace):
    done = dry_run(paper_workspace, "--profile", "profiles/slurm", "--configfile", "config/paper.yaml")
    jobs = [job for job in planned_jobs(done.stdout) if job["rule"] != "all"]
    assert {job["rule"] for job in jobs} >= set(expected_paper_counts()) - {"all"}
    for job in jobs:
        res = job["res"]
        assert int(res["mem_mb"]) >= 4000 and int(res["runtime"]) >= 15, job
        assert res["slurm_account"] == "<account>", job
        if job["rule"] in GPU_RULES:
            assert res["gpu"] == "1", job
            assert res["slurm_partition"] == "<gpu-partition>", job
            assert int(job["threads"]) >= 1
        else:
            assert "gpu" not in res, job
            assert res["slurm_partition"] == "<cpu-partition>", job
            assert job["threads"] in ("", "1"), job

