"""The selection stage through Snakemake on the tiny Llama: every strategy, the task side, the
report tables and figure, what an edit reruns, and that no selection depends on test labels."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import polars as pl
import pytest

from demoscope.data.answers import exact_match
from demoscope.lenses.features import FEATURES
from demoscope.parquet import write_parquet
from demoscope.selection.strategies import PER_QUERY, instances, kind_of

from conftest import make_workspace, snakemake, tiny_config
from test_workflow import planned_jobs, write_config

pytestmark = pytest.mark.slow

STRATEGY_ROWS = [
    "random", "activation-mean-Lbest-causal-mlp_out-top", "activation-mean-Lbest-causal-mlp_out-bottom",
    "quality_oracle", "similarity", "diversity", "uncertainty-most", "uncertainty-least", "votek",
    "bm25", "dpp", "mdl", "cone",
]
TEST_QUERIES = {"sst2": 6, "gsm8k": 3}


def selection_config(model_dir, data_dir) -> dict:
    """Classification (SST-2) and generation (GSM8K); multiple choice is covered by the unit
    tests. One seed, one store and no SAE lens keep the run to about 90 jobs."""
    config = tiny_config(model_dir, data_dir)
    config["dumps"] = {"causal": ["mlp_out"]}
    config["sae"]["stores"] = []
    # Model jobs here are mostly start-up: one thread each lets two run at once.
    config["compute"]["threads"] = 1
    config["tasks"] = {task: config["tasks"][task] for task in TEST_QUERIES}
    for task, n in TEST_QUERIES.items():
        config["tasks"][task]["sizes"]["test_queries"] = n
    config["tasks"]["gsm8k"]["sizes"]["task_sets"] = 4  # a task's own P overrides selection.task_sets
    config["selection"] = {
        "k": 2,
        "seeds": [0],
        "strategies": ["random", "activation", "quality_oracle", "similarity", "diversity", "uncertainty", "votek",
                       "bm25", "dpp", "mdl", "cone"],
        "activation": [{"feature": "mean", "layer": "best", "mask": "causal", "site": "mlp_out"}],
        "task_sets": 5,
        "votek": {"neighbours": 3, "rho": 10},
        "dpp": {"candidates": 5, "scale": 0.1},
        "mdl": {"candidates": 5, "subsets": 3},
        "cone": {"candidates": 5},
    }
    return config


@pytest.fixture(scope="module")
def selection_run(tmp_path_factory, tiny_llama, tiny_data):
    config = selection_config(tiny_llama, tiny_data)
    workdir = make_workspace(tmp_path_factory.mktemp("wf-selection"), config)
    snakemake(workdir)
    return workdir, config


def test_every_strategy_is_selected_evaluated_and_reported(selection_run):
    workdir, config = selection_run
    tasks = list(config["tasks"])
    table = pl.read_csv(workdir / "results/report/strategies.csv")
    for task in tasks:
        part = table.filter(pl.col("task") == task)
        assert part["strategy"].to_list() == STRATEGY_ROWS
        assert (part["n_queries"] == TEST_QUERIES[task]).all()
        assert ((part["ci_low"] <= part["mean_accuracy"]) & (part["mean_accuracy"] <= part["ci_high"])).all()
        assert part.filter(pl.col("strategy") == "random")["n_seeds"].to_list() == [1]
        assert part.filter(pl.col("reference"))["strategy"].to_list() == ["quality_oracle"]
        # Paired against random on the same queries: a p-value each, and on 6 queries no verdict
        # but underpowered (77 are the fewest on which 10 points could be detected).
        compared = part.filter(pl.col("strategy") != "random")
        assert compared["vs_random_p"].is_between(0, 1).all() and compared["vs_random_padj"].is_not_null().all()
        assert set(part["verdict"]) == {"underpowered"} and not part["distinguishable"].any()
        for ext, magic in (("png", b"\x89PNG\r\n\x1a\n"), ("pdf", b"%PDF-")):
            assert (workdir / f"results/figures/strategies/tiny/{task}.{ext}").read_bytes()[: len(magic)] == magic
    for task in tasks:
        candidates = pl.read_parquet(workdir / f"results/tiny/{task}/prompts/candidates.parquet")
        queries = pl.read_parquet(workdir / f"results/tiny/{task}/prompts/test_queries.parquet")
        for name in instances(config["selection"]):
            chosen = pl.read_parquet(workdir / f"results/tiny/{task}/selection/{name}.parquet")
            evaluated = pl.read_parquet(workdir / f"results/tiny/{task}/evaluation/{name}.parquet")
            assert evaluated["query_id"].to_list() == queries["query_id"].to_list()
            assert (evaluated["shots"] == 2).all()
            if kind_of(name) in PER_QUERY:
                assert sorted(chosen["query_id"].unique().to_list()) == queries["query_id"].to_list()
            else:
                assert (chosen["query_id"] == -1).all() and chosen.height == 2
            if task == "sst2":  # classification: one demonstration of each label
                for _, part in chosen.group_by("query_id"):
                    labels = candidates.join(part, on="cand_id")["label"].sort().to_list()
                    assert labels == ["negative", "positive"], (name, labels)
            else:  # generation: greedy answers, scored by exact match of the final number
                answers = dict(zip(queries["query_id"], queries["answer"]))
                for row in evaluated.iter_rows(named=True):
                    assert row["correct"] == exact_match(row["output"], answers[row["query_id"]])
                    assert row["gold_logprob"] < 0
            # The sets travel: JSONL lines and lm-evaluation-harness samples, in prompt order.
            lines = [json.loads(line) for line in
                     (workdir / f"results/tiny/{task}/sets/{name}.jsonl").read_text().splitlines()]
            sets = chosen.sort("query_id", "position").group_by("query_id", maintain_order=True).agg("cand_id")
            assert [line["cand_ids"] for line in lines] == sets["cand_id"].to_list()
            samples = json.loads((workdir / f"results/tiny/{task}/sets/{name}.lm_eval.json").read_text())
            if kind_of(name) not in PER_QUERY:
                assert [doc["record_id"] for doc in samples] == lines[0]["record_ids"]
        counts = pl.read_parquet(workdir / f"results/tiny/{task}/prompts/contamination.parquet")
        assert counts["set"].to_list() == ["test", "quality"] and (counts["candidates"] == candidates.height).all()
    spearman = pl.read_csv(workdir / "results/report/task_spearman.csv")
    assert spearman.height == len(tasks) * len(FEATURES) * 3 * 2  # tasks x features x layers x metrics
    assert set(spearman["metric"]) == {"accuracy", "gold_logprob"}
    assert set(zip(spearman["task"], spearman["n"])) <= {("sst2", 5), ("gsm8k", 4)}
    assert set(spearman["lens"]) == {"moments", "massive"}
    # 5 and 4 sets: exact permutation p-values where rho is defined, never 0, and underpowered
    defined = spearman.filter(pl.col("rho").is_not_nan())
    assert defined.height and defined["exact_p"].all() and (defined["pvalue"] >= 2 / 120).all()
    assert spearman["underpowered"].all()
    for task, n_sets in (("sst2", 5), ("gsm8k", 4)):
        sets = pl.read_parquet(workdir / f"results/tiny/{task}/task_sets.parquet")
        assert sets.height == n_sets and sets["accuracy"].is_between(0, 1).all() and (sets["gold_logprob"] < 0).all()
    uncertainty = pl.read_parquet(workdir / "results/tiny/gsm8k/zero_shot.parquet")
    assert (uncertainty["n_options"] == 0).all() and (uncertainty["uncertainty"] > 0).all()  # next-token entropy
    summary = (workdir / "results/report/summary.md").read_text()
    assert "## Task performance" in summary and "quality_max_abs_rho" in summary


def test_second_run_has_nothing_to_do(selection_run):
    assert planned_jobs(selection_run[0]) == {}


def planned_with(workdir, config, selection: dict) -> dict[str, int]:
    try:
        write_config(workdir, {**config, "selection": {**config["selection"], **selection}})
        return planned_jobs(workdir)
    finally:
        write_config(workdir, config)


REPORT_JOBS = {"report_selection": 1, "plot_strategies": 2, "write_config": 1, "all": 1}


# Each task has one evaluate job for the instances that read no quality and one
# (evaluate_after_quality) for those that wait for it, each scoring its instances with one model
# load: adding an instance reruns its own select jobs and its group's evaluate job of that task
# (README, "The workflow", explains the trade), and nothing upstream.


def test_adding_a_seed_reruns_only_its_own_jobs_and_the_report(selection_run):
    workdir, config = selection_run
    jobs = planned_with(workdir, config, {"seeds": config["selection"]["seeds"] + [7]})
    assert jobs == {"select": 2, "evaluate": 2, **REPORT_JOBS}  # one of each per task; a seed reads no quality


def test_adding_a_strategy_reruns_only_its_own_jobs_and_the_report(selection_run):
    workdir, config = selection_run
    entry = {"feature": "variance", "layer": 1, "mask": "causal", "site": "mlp_out"}
    jobs = planned_with(workdir, config, {"activation": config["selection"]["activation"] + [entry]})
    # Top and bottom per task, and one evaluate job per task: a fixed layer reads no quality.
    assert jobs == {"select": 4, "evaluate": 2, **REPORT_JOBS}


def test_a_strategy_that_reads_quality_reruns_only_the_evaluate_job_after_quality(selection_run):
    workdir, config = selection_run
    entry = {"feature": "variance", "layer": "best", "mask": "causal", "site": "mlp_out"}
    jobs = planned_with(workdir, config, {"activation": config["selection"]["activation"] + [entry]})
    # Its best layer comes from the correlations with quality: the other group's job stays.
    assert jobs == {"select": 4, "evaluate_after_quality": 2, **REPORT_JOBS}


def test_an_added_strategy_leaves_the_other_tables_as_they_were(selection_run, tmp_path):
    """The rerun evaluate job writes every table again; each is computed on its own, so the
    tables of the strategies that were there come out byte for byte the same."""
    workdir, config = selection_run
    copy = tmp_path / "added"
    shutil.copytree(workdir, copy, symlinks=True)
    tables = {task: sorted((copy / f"results/tiny/{task}/evaluation").glob("*.parquet")) for task in config["tasks"]}
    before = {task: file_hashes(paths) for task, paths in tables.items()}
    write_config(copy, {**config, "selection": {**config["selection"], "seeds": config["selection"]["seeds"] + [7]}})
    snakemake(copy, "results/report/strategies.csv")
    for task, paths in tables.items():
        assert file_hashes(paths) == before[task]
        assert (copy / f"results/tiny/{task}/evaluation/random-s7.parquet").exists()
        log = (copy / f"results/logs/evaluate/tiny/{task}.log").read_text()
        assert "random-s7: accuracy" in log and "first forward after" in log and "forwarded" in log


def file_hashes(paths) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_shuffled_test_labels_leave_every_selection_unchanged(selection_run, tmp_path):
    workdir, config = selection_run
    copy = tmp_path / "shuffled"
    shutil.copytree(workdir, copy, symlinks=True)
    rng = np.random.default_rng(0)
    targets, before = [], {}
    for task in config["tasks"]:
        path = copy / f"results/tiny/{task}/prompts/test_queries.parquet"
        queries = pl.read_parquet(path)
        order = rng.permutation(queries.height)
        while (queries["answer"].to_numpy()[order] == queries["answer"].to_numpy()).all():
            order = rng.permutation(queries.height)
        shuffled = queries.with_columns(*[queries[c].gather(order) for c in ("label", "answer", "gold_index")])
        write_parquet(shuffled, path)
        selections = sorted((copy / f"results/tiny/{task}/selection").glob("*.parquet"))
        before.update({f"{task}/{k}": v for k, v in file_hashes(selections).items()})
        targets += [str(p.relative_to(copy)) for p in selections]
    # Every select job reads the test queries' label-free columns (the contamination guard),
    # so every selection is out of date; none may change.
    n = len(instances(config["selection"]))
    assert planned_jobs(copy, *targets) == {"embed": 2, "select": 2 * (n - 2), "select_model": 4}
    snakemake(copy, *targets)
    after = {}
    for task in config["tasks"]:
        selections = sorted((copy / f"results/tiny/{task}/selection").glob("*.parquet"))
        after.update({f"{task}/{k}": v for k, v in file_hashes(selections).items()})
    assert after == before


def test_an_sae_lens_entry_selects_from_the_sae_tables(selection_run):
    workdir, config = selection_run
    entry = {"feature": "sae_l0", "layer": "best", "mask": "causal", "site": "mlp_out", "lens": "sae"}
    edited = {**config, "sae": {**config["sae"], "stores": [["causal", "mlp_out"]]},
              "selection": {**config["selection"], "activation": config["selection"]["activation"] + [entry]}}
    target = "results/tiny/sst2/selection/activation-sae-sae_l0-Lbest-causal-mlp_out-top.parquet"
    try:
        write_config(workdir, edited)
        done = snakemake(workdir, "-n", target)
    finally:
        write_config(workdir, config)
    job = done.stdout.split("rule select:")[1].split("\n\n")[0]
    assert "results/tiny/sst2/sae_features/causal/mlp_out.parquet" in job
    assert "results/tiny/sst2/sae_correlations/causal/mlp_out.parquet" in job
    assert "train_sae" in done.stdout


def test_a_tasks_own_number_of_sets_reruns_only_its_task_side(selection_run):
    workdir, config = selection_run
    gsm8k = {**config["tasks"]["gsm8k"], "sizes": {**config["tasks"]["gsm8k"]["sizes"], "task_sets": 6}}
    try:
        write_config(workdir, {**config, "tasks": {**config["tasks"], "gsm8k": gsm8k}})
        jobs = planned_jobs(workdir)
    finally:
        write_config(workdir, config)
    assert jobs["task_sets"] == 1 and jobs["task_correlation"] == 1 and jobs["report_selection"] == 1
    assert not {"build_prompts", "score_quality", "dump_activations", "select", "evaluate"} & set(jobs)
