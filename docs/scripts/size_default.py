"""Sizes for the default run: quality reliability, family-wise power and CPU cost per unit of work.

Scores N candidates of a task against Q quality queries with the package (the same draw as
build_prompts, the config's template, `quality.quality_tables`), then reports

- the split-half reliability of accuracy and gold_logprob at Q' queries (`reliability_curve`
  on the measured candidate x query matrix) and Spearman-Brown beyond what was measured;
- the family-wise detectable |rho| at n candidates: the critical value is the 95% quantile of
  the permutation max-T null (`maxnull.permuted_abs_rho_max`) of a family of the planned shape
  with independent columns (an upper bound: real features are correlated, which lowers the
  null's maximum), turned into a detectable |rho| by `power.detectable_rho`;
- CPU seconds (time.process_time, one torch thread) per candidate x quality query, per
  candidate of a causal dump (a forward over the demonstration plus writing the store), of
  features, and of the correlations with the max-T null.

CPU seconds, not wall time: the machine this was written on is shared (load ~13 on 2 cores),
so wall time measures the neighbours. CPU time under load is itself somewhat inflated (caches
are shared), so the predictions it gives are an upper bound for an idle run.

    python docs/scripts/size_default.py --config config/config.yaml --data-dir ../shared/data \\
        --model /tmp/sizing/model --task sst2 --candidates 48 --queries 64 --out /tmp/sizing/sst2
    python docs/scripts/size_default.py --task boolq --task-config config/paper.yaml ...

--model is a prepared folder: `python -c "from demoscope.lm import models;
models.prepare('embedded', '/tmp/sizing/model')"` with workflow/ on sys.path.
Measured 2026-12-01 (README "Timing"): SST-2 0.067 CPU s per candidate x quality query,
BoolQ 0.58 (its queries carry a passage, about 205 tokens against SST-2's 19).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))


def cpu() -> float:
    return time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--task-config", help="YAML holding the task's entry, if not --config (e.g. config/paper.yaml)")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--model", required=True, help="a prepared model folder (models.prepare)")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--candidates", type=int, default=64)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--splits", type=int, default=200)
    parser.add_argument("--family", type=int, default=0, help="tests in the family; 0: from the config's dumps")
    parser.add_argument("--dump-candidates", type=int, default=0, help="candidates dumped and featurised (0: all)")
    parser.add_argument("--test-queries", type=int, default=32, help="test queries scored by 3 k-shot sets for cost")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import polars as pl
    import torch

    from demoscope.lm import models
    from demoscope.lenses.features import FEATURES, compute_features
    from demoscope.stats.maxnull import permuted_abs_rho_max, permutations
    from demoscope.stats.power import detectable_rho
    from demoscope.data.prompts import build_prompt_tables
    from demoscope.quality.oneshot import encode_prompts, quality_tables
    from demoscope.lm.scoring import score_options
    from demoscope.stats.rhotable import feature_matrix
    from demoscope.stats.reliability import reliability_curve, spearman_brown, split_half, summarise_splits
    from demoscope.activations.store import open_store
    from demoscope.data.tasks import SPLITS, generation_settings, has_split, load_split
    from demoscope.data.templates import Template
    from demoscope.activations.dump import dump_activations
    from demoscope.lm.embeddings import candidate_texts, mean_pooled

    torch.set_num_threads(1)
    config = yaml.safe_load(open(args.config))
    task = yaml.safe_load(open(args.task_config or args.config))["tasks"][args.task]
    task = {**task, "sizes": {**task["sizes"], "candidates": args.candidates, "quality_queries": args.queries,
                              "test_queries": args.test_queries}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"task": args.task, "candidates": args.candidates, "queries": args.queries,
                    "note": "CPU seconds from time.process_time with one torch thread, on a shared, loaded machine"}

    present = [s for s in SPLITS if s != "dev" or has_split(task, s, args.data_dir)]
    splits = {s: load_split(task, s, args.data_dir, None, args.task) for s in present}
    model, tokenizer, device = models.load(args.model, "cpu", "float32")
    template = Template.from_config(task.get("template"))
    tables = build_prompt_tables(splits, template, task["sizes"], config["seed"], tokenizer)
    candidates, queries = tables["candidates"], tables["quality_queries"]

    # Quality: every candidate x quality query, timed as one job's work (after loading).
    start = cpu()
    quality, by_query = quality_tables(model, tokenizer, template, candidates, queries, device,
                                       config["compute"]["batch_tokens"], kind=task["kind"], progress=False,
                                       generation=generation_settings(task) if task["kind"] == "generation" else None)
    spent = cpu() - start
    pairs = len(candidates) * len(queries)
    report["quality_cpu_s"] = spent
    report["quality_cpu_s_per_pair"] = spent / pairs
    report["query_tokens_mean"] = float(queries["n_tokens"].mean())
    report["candidate_tokens_mean"] = float(candidates["n_tokens"].mean())
    by_query.write_parquet(out / "by_query.parquet")
    quality.write_parquet(out / "quality.parquet")

    # Evaluation: a k-shot set (selection.k demonstrations) scored on the test queries, as
    # `evaluate` does per strategy instance; three sets, timed per set x test query.
    tests = tables["test_queries"]
    if len(tests):
        k = config["selection"]["k"]
        demos = candidates["demonstration"].to_list()
        sets = [[demos[(i * k + j) % len(demos)] for j in range(k)] for i in range(3)]
        start = cpu()
        prefixes, q_ids, o_ids = encode_prompts(tokenizer, template, sets, tests)
        score_options(model, prefixes, q_ids, o_ids, device, tokenizer.pad_token_id,
                      config["compute"]["batch_tokens"], False)
        report["evaluate_cpu_s_per_set_x_test_query"] = (cpu() - start) / (len(sets) * len(tests))
        report["test_query_tokens_mean"] = float(tests["n_tokens"].mean())

    # Reliability: measured at Q' <= Q by subsampling, Spearman-Brown beyond.
    rng = np.random.default_rng(0)
    by_query = by_query.sort("cand_id", "query_id")
    labels = by_query.filter(pl.col("cand_id") == by_query["cand_id"][0])["query_label"].to_numpy()
    rows = []
    for metric, outcome in (("accuracy", "correct"), ("gold_logprob", "gold_logprob")):
        matrix = by_query[outcome].to_numpy().reshape(len(candidates), len(queries))
        sizes = [s for s in (8, 16, 32, 64) if s <= len(queries)]
        for row in reliability_curve(matrix, labels, sizes, args.splits, rng):
            rows.append({"metric": metric, "measured": True, **row})
        full = summarise_splits(split_half(matrix, labels, args.splits, rng))["reliability"]
        for size in (100, 128, 200):
            if size > len(queries):
                rows.append({"metric": metric, "measured": False, "queries": size,
                             "reliability": float(spearman_brown(full, size / len(queries)))})
        rows.append({"metric": metric, "measured": True, "queries": len(queries), "reliability": full,
                     "candidate_sd": float(matrix.mean(1).std()), "mean": float(matrix.mean())})
    report["reliability"] = rows

    # Cost of a causal dump of the demonstrations (one site) and of their features; the
    # features also give the real family's correlation structure.
    few = candidates.head(args.dump_candidates or len(candidates))
    with tempfile.TemporaryDirectory() as tmp:
        start = cpu()
        dump_activations(model, tokenizer, few["demonstration"].to_list(), Path(tmp) / "store", "mlp_out", device,
                         "float16", "causal", config["compute"]["batch_tokens"], config["compute"]["chunk_tokens"])
        report["dump_cpu_s_per_candidate"] = (cpu() - start) / len(few)
        start = cpu()
        features = compute_features(open_store(Path(tmp) / "store"), skip_first_token=True)
        report["features_cpu_s_per_candidate"] = (cpu() - start) / len(few)
        # The instruction mask: each demonstration after the task's instruction.
        raw = task.get("template") or {}
        start = cpu()
        dump_activations(model, tokenizer, few["demonstration"].to_list(), Path(tmp) / "instruction", "mlp_out",
                         device, "float16", "instruction", config["compute"]["batch_tokens"],
                         config["compute"]["chunk_tokens"], instruction=raw.get("instruction", ""),
                         separator=raw.get("separator", "\n\n"))
        report["instruction_dump_cpu_s_per_candidate"] = (cpu() - start) / len(few)
    # The `embed` job's work (embedding: model): mean-pooled last hidden states of the texts.
    start = cpu()
    mean_pooled(models.backbone(model), tokenizer,
                candidate_texts(template, few), device, config["compute"]["batch_tokens"])
    report["embed_cpu_s_per_candidate"] = (cpu() - start) / len(few)
    layers = len(models.decoder_layers(model))
    report["layers"] = layers
    metric_names = config["report"]["quality_metrics"]
    metrics = len(metric_names)
    count = config["report"]["permutations"]

    def critical(x: np.ndarray, y: np.ndarray, n: int, key: str) -> tuple[float, float]:
        perms = permutations(n, count, config["seed"], "sizing", key)
        start = cpu()
        null = np.nanmax(permuted_abs_rho_max(x, y, perms), axis=1)
        return float(np.quantile(null, 0.95)), cpu() - start

    # The real family of one store (features x layers x metrics) at n = the dumped candidates,
    # and the number of independent tests whose null has the same 95% quantile there.
    n_real = len(few)
    x_real, _ = feature_matrix(features, few["cand_id"].to_numpy(), list(FEATURES))
    y_real = quality.sort("cand_id").head(n_real).select(metric_names).to_numpy().astype(float)
    real_critical, real_cpu = critical(x_real, y_real, n_real, "real")
    report["real_store_family"] = {"n": n_real, "tests": int(x_real.shape[1] * metrics), "critical_rho": real_critical,
                                   "null_cpu_s": real_cpu}
    effective = 1
    for m in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096):
        simulated, _ = critical(np.random.default_rng(m).standard_normal((n_real, m)),
                                np.random.default_rng(0).standard_normal((n_real, 1)), n_real, f"m{m}")
        effective = m
        if simulated >= real_critical:
            break
    report["real_store_family"]["effective_tests"] = effective

    # The planned family: every feature x layer x store x quality metric (what maxnull.py
    # calls it). Nominal: all tests independent (an upper bound on the critical value);
    # effective: the stores' effective tests add up (stores of one forward are correlated, so
    # this too is an upper bound).
    stores = sum(len(sites) for sites in config["dumps"].values())
    nominal = args.family or len(FEATURES) * layers * stores * metrics
    report["family_tests"] = nominal
    powered = []
    for n in (100, 200, 300):
        for name, size in (("nominal", nominal), ("effective", effective * stores)):
            crit, spent = critical(np.random.default_rng(n).standard_normal((n, size)),
                                   np.random.default_rng(n + 1).standard_normal((n, 1)), n, f"{name}{n}")
            powered.append({"n": n, "family": name, "tests": size, "critical_rho": crit,
                            "detectable_rho": detectable_rho(crit, n, 0.8), "null_cpu_s": spent})
    report["power"] = powered
    (out / "sizing.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
