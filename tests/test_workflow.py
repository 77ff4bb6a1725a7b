"""The workflow end to end through Snakemake: tiny random models, then the real embedded model."""

from __future__ import annotations

import json
import re
import zipfile

import matplotlib.image
import numpy as np
import polars as pl
import pytest
import yaml
from scipy import stats

import browser
from demoscope.lm import models
from demoscope.stats.degenerate import usable_metrics
from demoscope.lenses.features import FEATURES
from demoscope.lenses.registry import CONTROL_FEATURES, SAE_FEATURES

from conftest import REPO, SHARED_DATA, default_config, make_workspace, snakemake, tiny_config

FIGURES = ["rho_heatmap", "rho_by_layer", "strongest", "quality", "reliability", "massive", "sae_lens"]
FIGURE_RULES = {"plot_rho_heatmap", "plot_rho_by_layer", "plot_strongest", "plot_quality", "plot_reliability",
                "plot_massive", "plot_sae_lens"}

pytestmark = pytest.mark.slow


def planned_jobs(workdir, *targets: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run ({} when nothing is to be done)."""
    out = snakemake(workdir, "-n", *targets).stdout
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M) if m.group(1) != "total"}


def usable(workdir, model, task, metrics) -> list[str]:
    quality = pl.read_parquet(workdir / f"results/{model}/{task}/quality.parquet")
    return usable_metrics(quality, metrics)


def check_report(workdir, config) -> pl.DataFrame:
    table = pl.read_csv(workdir / "results" / "report" / "spearman.csv", schema_overrides={"layer": pl.Int64})
    n_layers = config["_layers"]
    n_dumps = sum(len(sites) for sites in config["dumps"].values())
    metrics = config["report"]["quality_metrics"]
    sae = config["sae"]
    sae_tasks = sae.get("tasks") or list(config["tasks"])
    expected = 0
    for model in config["models"]:
        for task in config["tasks"]:
            # Degenerate quality metrics are reported, never correlated.
            n_metrics = len(usable(workdir, model, task, metrics))
            controls = pl.read_parquet(workdir / f"results/{model}/{task}/controls.parquet")
            n_controls = len(set(controls.columns) & set(CONTROL_FEATURES))
            expected += n_metrics * (n_dumps * len(FEATURES) * n_layers + n_controls)
            expected += n_metrics * len(SAE_FEATURES) * len(sae["layers"]) * len(sae["stores"]) * (task in sae_tasks)
            # Every quality definition keeps its candidate x query outcomes.
            by_query = pl.read_parquet(workdir / f"results/{model}/{task}/quality_by_query.parquet")
            assert by_query.height == controls.height * config["tasks"][task]["sizes"]["quality_queries"]
    assert table.height == expected
    assert "n_tokens" not in set(table.filter(pl.col("lens") != "controls")["feature"])
    assert set(table.filter(pl.col("lens") == "sae")["layer"]) == set(sae["layers"])
    assert set(table.filter(pl.col("lens") == "sae")["task"]) == set(sae_tasks)
    assert set(table["lens"]) == {"moments", "massive", "sae", "controls"}
    assert table.filter(pl.col("lens") == "controls")["layer"].is_null().all()
    stores = set(zip(table["mask"], table["site"])) - {(None, None)}
    assert stores == {(m, s) for m, sites in config["dumps"].items() for s in sites}
    assert set(table["task"]) == set(config["tasks"])
    # rho is finite exactly where both sides vary, NaN elsewhere: never a silent 0 for a constant side.
    for (model, task, mask, site, lens), part in table.group_by(["model", "task", "mask", "site", "lens"]):
        folder = {"sae": "sae_features", "controls": None}.get(lens, "features")
        path = f"results/{model}/{task}/controls.parquet" if folder is None else f"results/{model}/{task}/{folder}/{mask}/{site}.parquet"
        features = pl.read_parquet(workdir / path)
        quality = pl.read_parquet(workdir / f"results/{model}/{task}/quality.parquet")
        for row in part.iter_rows(named=True):
            chosen = features if folder is None else features.filter(pl.col("layer") == row["layer"])
            x = chosen.join(quality, on="cand_id")[row["feature"]].to_numpy()
            y = quality[row["quality"]].to_numpy()
            varies = np.nanmax(x) > np.nanmin(x) and y.max() > y.min()
            assert np.isfinite(row["rho"]) == varies, row
    # Intervals exist exactly where rho does; BH is taken over the run's family tests as one family.
    assert (table["ci_low"].is_nan() == table["rho"].is_nan()).all()
    defined = table.filter(pl.col("ci_low").is_not_nan())
    assert (defined["ci_low"] <= defined["ci_high"]).all()
    assert table["in_family"].all() == ("packed" not in config["dumps"])
    tested = table.filter(pl.col("pvalue").is_not_nan() & pl.col("in_family"))
    assert tested["padj"].to_numpy() == pytest.approx(stats.false_discovery_control(tested["pvalue"].to_numpy()))
    # The family-wise p-value is never below the nominal one's order: a maximum of many tests.
    assert (tested["p_fwer"] >= tested["pvalue"].clip(upper_bound=1) - 1e-12).mean() > 0.9
    for task, entry in config["tasks"].items():
        controls = "n_tokens,label" if entry["kind"] == "classification" else "n_tokens"
        assert set(table.filter(pl.col("task") == task)["controls"]) == {controls}
    headline = pl.read_csv(workdir / "results" / "report" / "headline.csv")
    assert headline.height == len(config["models"]) * len(config["tasks"])
    for column in ("verdict", "p_max", "null_max_q95", "reliability", "noise_ceiling", "detectable_rho",
                   "share_bounded", "best_control"):
        assert column in headline.columns
    verdicts = {"signal", "no signal detected", "underpowered", "degenerate quality",
                f"bounded below the study's {config['report']['bound']}"}
    for row in headline.iter_rows(named=True):
        assert row["verdict"] in verdicts
        part = table.filter((pl.col("model") == row["model"]) & (pl.col("task") == row["task"]) & pl.col("in_family"))
        activations = part.filter(pl.col("lens") != "controls")
        assert row["max_abs_rho"] == pytest.approx(activations["rho"].abs().max())
        assert row["tests"] == part.height and row["significant"] == (part["padj"] < 0.05).sum()
        assert 0 < row["p_max"] <= 1 and 0 <= row["null_max_q95"] <= 1
        reliability = pl.read_parquet(workdir / f"results/{row['model']}/{row['task']}/reliability.parquet")
        assert row["reliability"] == pytest.approx(reliability.filter(pl.col("metric") == row["quality"])["reliability"][0])
    summary = (workdir / "results" / "report" / "summary.md").read_text()
    for heading in ("Verdict per model and task", "Reliability of quality", "Largest |partial rho| per model and task",
                    "NaN correlations", "Quality by demonstration label", "Largest |rho| per lens", "SAE quality",
                    "Skipped records", "Consistency checks"):
        assert heading in summary
    assert "<table>" in (workdir / "results" / "report" / "summary.html").read_text()
    written = yaml.safe_load((workdir / "results" / "report" / "config.yaml").read_text())
    # The configuration as the run saw it: the schema's defaults filled in.
    assert written["dumps"] == config["dumps"] and set(written["models"]) == set(config["models"])
    assert written["tasks"]["sst2"]["sizes"]["test_queries"] == 0
    for figure in FIGURES:
        for model in config["models"]:
            for task in config["tasks"]:
                path = workdir / f"results/figures/{figure}/{model}/{task}"
                assert path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
                assert path.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    return table


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory, tiny_llama, tiny_data):
    config = tiny_config(tiny_llama, tiny_data)
    workdir = make_workspace(tmp_path_factory.mktemp("wf-llama"), config)
    snakemake(workdir)
    return workdir, {**config, "_layers": 3}


def test_tiny_llama_end_to_end(llama_run):
    workdir, config = llama_run
    table = check_report(workdir, config)
    assert table["rho"].is_finite().sum() > 0
    summary = (workdir / "results" / "report" / "summary.md").read_text()
    for mask, sites in config["dumps"].items():
        for site in sites:
            assert f"| {mask} | {site} |" in summary


def family_columns(workdir, config, model, task) -> np.ndarray:
    """Every feature column of a task's family (stores, SAE lens, controls), candidates in cand_id order."""
    base = workdir / f"results/{model}/{task}"
    tables = [(base / f"features/{m}/{s}.parquet", FEATURES) for m, sites in config["dumps"].items() for s in sites]
    sae_tasks = config["sae"].get("tasks") or list(config["tasks"])
    if task in sae_tasks:
        tables += [(base / f"sae_features/{m}/{s}.parquet", SAE_FEATURES) for m, s in config["sae"]["stores"]]
    columns = []
    for path, names in tables:
        features = pl.read_parquet(path).sort("cand_id", "layer")
        for _, layer in features.group_by("layer", maintain_order=True):
            columns += [layer[name].to_numpy() for name in names]
    controls = pl.read_parquet(base / "controls.parquet").sort("cand_id")
    columns += [controls[name].to_numpy() for name in CONTROL_FEATURES if name in controls.columns]
    return np.column_stack(columns).astype(float)


def test_p_max_agrees_with_an_independent_scipy_recomputation(llama_run):
    """The headline's family-wise p-value, recomputed from the feature tables and quality with
    scipy's spearmanr over permutations of our own: equal within Monte Carlo error."""
    workdir, config = llama_run
    headline = pl.read_csv(workdir / "results" / "report" / "headline.csv")
    model, task = "tiny", "sst2"
    row = headline.filter(pl.col("task") == task).row(0, named=True)
    quality = pl.read_parquet(workdir / f"results/{model}/{task}/quality.parquet").sort("cand_id")
    y = quality.select(usable(workdir, model, task, config["report"]["quality_metrics"])).to_numpy()
    x = family_columns(workdir, config, model, task)
    x = x[:, np.nanmax(x, axis=0) > np.nanmin(x, axis=0)]  # constant columns give no rho
    rng = np.random.default_rng(12345)
    draws = 400

    def largest(y_perm):
        full = np.isfinite(x).all(axis=0)
        rho = stats.spearmanr(np.column_stack([x[:, full], y_perm])).statistic[: full.sum(), full.sum():]
        best = np.nanmax(np.abs(rho))
        for column in np.flatnonzero(~full):
            for metric in y_perm.T:
                best = max(best, abs(stats.spearmanr(x[:, column], metric, nan_policy="omit").statistic))
        return best

    null = np.array([largest(y[rng.permutation(len(y))]) for _ in range(draws)])
    p = (1 + (null >= row["max_abs_rho"] - 1e-12).sum()) / (1 + draws)
    error = np.sqrt(p * (1 - p) * (1 / draws + 1 / config["report"]["permutations"]))
    assert row["p_max"] == pytest.approx(p, abs=4 * error + 0.01)


def test_tiny_qwen2_end_to_end(tmp_path, tiny_qwen2, tiny_data):
    config = tiny_config(tiny_qwen2, tiny_data, name="tiny-qwen2")
    config["dumps"] = {"causal": ["mlp_out", "resid"]}
    workdir = make_workspace(tmp_path, config)
    snakemake(workdir)
    table = check_report(workdir, {**config, "_layers": 3})
    assert set(table.filter(pl.col("lens") != "controls")["site"]) == {"mlp_out", "resid"}


def test_generation_task_end_to_end(llama_run, tiny_data):
    """GSM8K has no dev split and no labels: its quality queries are held out of train, its
    quality is exact match of generated answers, and every store, table and figure exists."""
    workdir, config = llama_run
    results = workdir / "results" / "tiny" / "gsm8k"
    candidates = pl.read_parquet(results / "prompts" / "candidates.parquet")
    queries = pl.read_parquet(results / "prompts" / "quality_queries.parquet")
    tests = pl.read_parquet(results / "prompts" / "test_queries.parquet")
    sizes = config["tasks"]["gsm8k"]["sizes"]
    assert (candidates.height, queries.height, tests.height) == (sizes["candidates"], sizes["quality_queries"], 0)
    assert not set(zip(candidates["input"], candidates["answer"])) & set(zip(queries["input"], queries["answer"]))
    train = [json.loads(line)["question"] for line in (tiny_data / "gsm8k" / "train.jsonl").read_text().splitlines()]
    assert set(queries["input"]) <= set(train) and set(candidates["input"]) <= set(train)
    assert all(q.startswith("Question: Tom has") and q.endswith("\nAnswer:") for q in queries["query"])
    assert all(a.rsplit("#### ", 1)[1].isdigit() for a in candidates["answer"])
    quality = pl.read_parquet(results / "quality.parquet")
    assert quality.height == sizes["candidates"] and set(quality["label"]) == {""}
    assert quality["accuracy"].is_between(0, 1).all() and (quality["accuracy"] == quality["accuracy_norm"]).all()
    assert (quality["gold_logprob"] < 0).all() and (quality["gold_logprob"] < quality["gold_logprob_norm"]).all()
    # Each score_quality shard generates for its own block of candidates.
    logs = [path.read_text() for path in sorted((workdir / "results/logs/score_quality/tiny/gsm8k").glob("*.log"))]
    assert len(logs) == config["compute"]["quality_shards"]
    generated = [int(re.search(r"generated (\d+) answers", log).group(1)) for log in logs]
    assert sum(generated) == sizes["candidates"] * sizes["quality_queries"]
    for mask, sites in config["dumps"].items():
        for site in sites:
            assert (results / "activations" / mask / f"{site}.zarr").is_dir()
            rows = pl.read_parquet(results / "correlations" / mask / f"{site}.parquet")
            assert set(rows["controls"]) == {"n_tokens"}
    summary = (workdir / "results" / "report" / "summary.md").read_text()
    assert "| tiny | gsm8k | (none) |" in summary


def planned_after_edit(workdir, path, old, new, *targets) -> dict[str, int]:
    """The dry-run plan with one edit made to a workspace file, which is restored afterwards."""
    original = path.read_text()
    assert old in original, f"{old!r} is not in {path}"
    path.write_text(original.replace(old, new))
    try:
        return planned_jobs(workdir, *targets)
    finally:
        path.write_text(original)


def test_second_run_has_nothing_to_do(llama_run):
    workdir, _ = llama_run
    assert planned_jobs(workdir) == {}


def test_editing_feature_code_reruns_only_features_and_report(llama_run):
    workdir, config = llama_run
    moments = workdir / "workflow" / "demoscope" / "lenses" / "moments.py"
    jobs = planned_after_edit(workdir, moments, '"variance": float(m2),', '"variance": float(m2 * 1.0),')
    # Quality is untouched, so its figure stays; every figure that reads features or rho reruns.
    # The correlation scripts import the feature names (features.py, which imports moments.py).
    assert set(jobs) == ({"compute_features", "correlate", "correlate_sae", "correlate_controls", "report", "all"}
                         | FIGURE_RULES - {"plot_quality", "plot_reliability"})
    n_stores = sum(len(sites) for sites in config["dumps"].values()) * len(config["tasks"])
    assert jobs["compute_features"] == n_stores and jobs["correlate"] == n_stores
    assert planned_jobs(workdir) == {}  # restoring the code restores the cache


def test_editing_plotting_code_reruns_only_figures(llama_run):
    workdir, config = llama_run
    figures = workdir / "workflow" / "demoscope" / "report" / "figures.py"
    jobs = planned_after_edit(workdir, figures, "dpi=120", "dpi=121", "paper")
    per_figure = len(config["models"]) * len(config["tasks"])
    assert jobs == {**{rule: per_figure for rule in FIGURE_RULES}, "paper": 1}
    assert planned_jobs(workdir, "paper") == {}


def test_report_renders_every_figure_in_a_browser(llama_run, tmp_path):
    workdir, config = llama_run
    binary = browser.chromium()
    snakemake(workdir, "--report", "report.zip")
    snakemake(workdir, "--report", "report.html")
    expected = {
        f"results/figures/{figure}/{model}/{task}.png"
        for figure in FIGURES for model in config["models"] for task in config["tasks"]
    }
    with zipfile.ZipFile(workdir / "report.zip") as bundle:
        page = bundle.read("report/report.html").decode()
        stored = [name for name in bundle.namelist() if name.startswith("report/data/")]
    # The zip stores each result once, under a hashed folder, and its page links every one.
    assert sum(name.endswith(".png") for name in stored) == len(expected)
    assert all(name.removeprefix("report/") in page for name in stored)

    shown = browser.probe_report(binary, workdir / "report.html", tmp_path)
    assert set(shown["figures"]) == expected
    for path, seen in shown["figures"].items():
        assert seen["width"] > 200 and seen["height"] > 150 and seen["caption"], (path, seen)
    categories = shown["categories"]
    assert {"Quality", "Activations", "Configuration"} <= set(categories)
    tables = {path for paths in categories["Quality"].values() for path in paths}
    assert {"results/report/spearman.csv", "results/report/headline.csv", "results/report/summary.html"} <= tables

    model, task = next(iter(config["models"])), next(iter(config["tasks"]))
    shot = browser.screenshot(binary, workdir / "report.html", f"results/figures/strongest/{model}/{task}.png",
                              tmp_path / "report.png", tmp_path)
    landing = browser.screenshot(binary, workdir / "report.html", None, tmp_path / "landing.png", tmp_path)
    figure, home = (matplotlib.image.imread(png)[:, 800:, :3] for png in (shot, landing))  # right of the navbar
    # The scatter replaced the landing page's rule graph: many pixels changed, in many colours.
    assert (np.abs(figure - home).max(axis=-1) > 0.1).mean() > 0.01
    assert len(np.unique(np.round(figure.reshape(-1, 3) * 255).astype(int), axis=0)) > 50


def write_config(workdir, config):
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump({k: v for k, v in config.items() if k != "_layers"}))


def test_adding_a_strategy_reruns_only_its_dumps_and_the_report(llama_run):
    workdir, config = llama_run
    try:
        write_config(workdir, {**config, "dumps": {**config["dumps"], "instruction": ["mlp_out", "resid"]}})
        jobs = planned_jobs(workdir)
    finally:
        write_config(workdir, config)
    # One dump job per mask fills every site of that mask in one forward: instruction's job
    # reruns, once per task (now under causal's rule, which dumps the same two sites), and so
    # do both its stores' features and correlations; the causal, packed and query dumps stay.
    # The figures of rho rerun; the strongest-feature scatter reads every store, so it reruns too.
    n = len(config["tasks"])
    assert jobs == {"dump_activations_mlp_out_resid": n, "compute_features": 2 * n, "correlate": 2 * n, "report": 1,
                    "write_config": 1, "plot_rho_heatmap": n, "plot_rho_by_layer": n, "plot_strongest": n,
                    "plot_sae_lens": n, "all": 1}


def test_changing_one_masks_settings_reruns_only_that_masks_jobs(llama_run):
    """`query` shares its dump rule with `instruction` and `packed` (the same sites); its own
    setting reruns its dump, once per task, and what reads its store, and nothing of theirs."""
    workdir, config = llama_run
    try:
        write_config(workdir, {**config, "query_mask": {"queries": config["query_mask"]["queries"] + 1}})
        jobs = planned_jobs(workdir)
    finally:
        write_config(workdir, config)
    n = len(config["tasks"])
    assert jobs == {"dump_activations_mlp_out": n, "compute_features": n, "correlate": n, "report": 1,
                    "write_config": 1, "plot_rho_heatmap": n, "plot_rho_by_layer": n, "plot_strongest": n,
                    "plot_sae_lens": n, "all": 1}


def test_changing_sae_settings_reruns_only_the_sae_lens(llama_run):
    workdir, config = llama_run
    for change in ({"k": 3}, {"lr": 0.001}, {"expansion": 3}):
        try:
            write_config(workdir, {**config, "sae": {**config["sae"], **change}})
            jobs = planned_jobs(workdir)
        finally:
            write_config(workdir, config)
        # One SAE per task and layer, one feature table and one correlation table per task; the
        # pool, its dump and every other lens stay. The figures of rho read the report.
        n = len(config["tasks"])
        assert jobs == {"train_sae": n * len(config["sae"]["layers"]), "sae_features": n, "correlate_sae": n,
                        "report": 1, "write_config": 1, "plot_rho_heatmap": n, "plot_rho_by_layer": n,
                        "plot_strongest": n, "plot_sae_lens": n, "all": 1}, change
    # How often a checkpoint is written does not change an SAE.
    try:
        write_config(workdir, {**config, "sae": {**config["sae"], "checkpoint_every": 7}})
        assert set(planned_jobs(workdir)) <= {"write_config", "all"}
    finally:
        write_config(workdir, config)


def test_a_layer_outside_the_model_stops_with_the_key_named(tmp_path, tiny_llama, tiny_data):
    config = tiny_config(tiny_llama, tiny_data)
    config["tasks"] = {"sst2": config["tasks"]["sst2"]}
    config["dumps"] = {"causal": ["mlp_out"]}
    config["sae"]["layers"] = [0, 5]
    workdir = make_workspace(tmp_path, config)
    done = snakemake(workdir, "results/tiny/sst2/sae/pool/causal/mlp_out.zarr", check=False)
    assert done.returncode != 0
    # build_prompts, the first job that reads the prepared model, stops before any dump, and
    # the console shows the cause on one line.
    cause = "demoscope error: ValueError: sae.layers: [5] are outside model 'tiny', which has 3 decoder layers (0..2)"
    assert cause in done.stderr
    log = (workdir / "results/logs/build_prompts/tiny/sst2.log").read_text()
    assert log.splitlines()[-1] == cause
    assert (workdir / "resources/models/tiny/config.json").exists()
    assert not (workdir / "results/logs/dump_sae_pool").exists()


def test_changing_a_size_reruns_that_task_only(llama_run):
    workdir, config = llama_run
    sst2 = {**config["tasks"]["sst2"], "sizes": {"candidates": 12, "quality_queries": 4}}
    try:
        write_config(workdir, {**config, "tasks": {**config["tasks"], "sst2": sst2}})
        jobs = planned_jobs(workdir)
    finally:
        write_config(workdir, config)
    # One dump job per mask, whatever rule its site list puts it under.
    n_dumps = sum(count for rule, count in jobs.items() if rule.startswith("dump_activations"))
    assert jobs["build_prompts"] == 1 and jobs["score_quality"] == config["compute"]["quality_shards"] and n_dumps == len(config["dumps"])
    assert "prepare_model" not in jobs


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"the offline data folder {SHARED_DATA} is not beside this checkout")
def test_real_embedded_model_on_real_data(tmp_path):
    config = default_config()
    config["data_dir"] = str(SHARED_DATA)
    config["tasks"]["sst2"]["sizes"] = {"candidates": 10, "quality_queries": 4}
    config["tasks"]["arc_challenge"]["sizes"] = {"candidates": 8, "quality_queries": 4}
    config["tasks"]["gsm8k"]["sizes"] = {"candidates": 4, "quality_queries": 4}
    config["tasks"]["gsm8k"]["generation"]["max_new_tokens"] = 48
    # A small pool keeps the SAE lens's real code path at a fraction of the default's cost.
    config["sae"].update(pool=200, steps=40)
    workdir = make_workspace(tmp_path, config)
    snakemake(workdir)
    model_dir = workdir / "resources" / "models" / "smollm2-135m"
    assert (model_dir / "model.safetensors").exists() and (model_dir / "tokenizer.json").exists()
    # The prepared folder is a plain model directory: it serves as a model source of its own.
    assert "quantization_config" not in json.loads((model_dir / "config.json").read_text())
    models.prepare(str(model_dir), tmp_path / "again")
    assert (tmp_path / "again" / "model.safetensors").exists()
    check_report(workdir, {**config, "_layers": 30})
    quality = pl.read_parquet(workdir / "results/smollm2-135m/sst2/quality.parquet")
    # SmolLM2 reads sentiment well above chance after one demonstration.
    assert quality["accuracy"].mean() > 0.6


def bad_data(root, good):
    """A copy of the tiny data with one malformed line and one unknown label in sst2's train split."""
    import shutil

    shutil.copytree(good, root)
    train = root / "sst2" / "train.jsonl"
    lines = train.read_text().splitlines()
    lines[3] = '{"input": "Review: x \\nSentiment:", "output": "neutral", "options": ["negative", "positive"]}'
    lines[5] = '{"input": "Review: y'
    train.write_text("\n".join(lines) + "\n")
    return train


def test_bad_records_stop_the_run_or_are_skipped_and_counted(tmp_path, tiny_llama, tiny_data):
    train = bad_data(tmp_path / "data", tiny_data)
    config = tiny_config(tiny_llama, tmp_path / "data")
    config["dumps"] = {"causal": ["mlp_out"]}
    target = "results/tiny/sst2/prompts/skipped.parquet"
    stop = make_workspace(tmp_path / "stop", config)
    done = snakemake(stop, target, check=False)
    assert done.returncode != 0
    log = (stop / "results/logs/build_prompts/tiny/sst2.log").read_text()
    assert f"{train}:4: label 'neutral' is not among the options" in log
    assert not (stop / target).exists()

    skip = make_workspace(tmp_path / "skip", {**config, "bad_records": "skip"})
    snakemake(skip, target)
    skipped = pl.read_parquet(skip / target)
    assert skipped["location"].to_list() == [f"{train}:4", f"{train}:6"]
    log = (skip / "results/logs/build_prompts/tiny/sst2.log").read_text()
    assert "skipped records: 2" in log


def table_hashes(workdir) -> dict[str, str]:
    import hashlib

    results = workdir / "results"
    return {
        str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(results.rglob("*")) if p.suffix in (".parquet", ".csv") and "logs" not in p.parts
    }


def test_same_config_and_seed_give_byte_identical_tables(llama_run, tmp_path):
    workdir, config = llama_run
    again = make_workspace(tmp_path / "again", {k: v for k, v in config.items() if k != "_layers"})
    snakemake(again)
    first, second = table_hashes(workdir), table_hashes(again)
    assert len(first) > 20 and first == second


def test_a_different_seed_changes_the_pools(llama_run, tmp_path):
    workdir, config = llama_run
    other = make_workspace(tmp_path / "seed1", {**{k: v for k, v in config.items() if k != "_layers"}, "seed": 1})
    target = "results/tiny/sst2/prompts/candidates.parquet"
    snakemake(other, target)
    ids = lambda w: pl.read_parquet(w / target)["record_id"].to_list()  # noqa: E731
    assert ids(other) != ids(workdir) and len(ids(other)) == len(ids(workdir))


def test_data_dir_without_the_task_folder_stops_planning(tmp_path, tiny_llama):
    (tmp_path / "empty").mkdir()
    workdir = make_workspace(tmp_path / "ws", tiny_config(tiny_llama, tmp_path / "empty"))
    done = snakemake(workdir, "-n", check=False)
    assert done.returncode != 0
    folder = tmp_path / "empty" / "sst2"
    assert f"tasks.sst2.local: the train split's file {folder}/train.<jsonl|json|csv|tsv|parquet|txt> does not exist" in done.stdout + done.stderr
