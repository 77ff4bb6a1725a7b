"""The lenses beyond the study through Snakemake on a tiny model: CondAcc quality, the task-vector
and attention lenses and published (SAELens, sparsify) SAEs, into the report beside the study's lenses."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import save_file

from demoscope.quality.condacc import draw_prompts
from demoscope.stats.degenerate import usable_metrics
from demoscope.lenses.registry import ATTENTION_FEATURES, SAE_FEATURES, TASK_VECTOR_FEATURES

from conftest import make_workspace, snakemake, tiny_config

pytestmark = pytest.mark.slow
HIDDEN, LAYERS = 32, 3


def published_saes(folder, model_name: str) -> None:
    """A SAELens JumpReLU SAE for layer 0's MLP output and a sparsify TopK SAE for layer 2's."""
    g = torch.Generator().manual_seed(0)
    d_sae = 64
    saelens = folder / "saelens" / "blocks.0.hook_mlp_out"
    saelens.mkdir(parents=True)
    save_file({"W_enc": torch.randn(HIDDEN, d_sae, generator=g), "W_dec": torch.randn(d_sae, HIDDEN, generator=g) * 0.1,
               "b_enc": torch.zeros(d_sae), "b_dec": torch.zeros(HIDDEN), "threshold": torch.full((d_sae,), 0.05)},
              saelens / "sae_weights.safetensors")
    (saelens / "cfg.json").write_text(json.dumps(
        {"d_in": HIDDEN, "d_sae": d_sae, "architecture": "jumprelu", "apply_b_dec_to_input": True,
         "normalize_activations": "none", "meta": {"model_name": model_name, "hook_name": "blocks.0.hook_mlp_out"}}))
    sparsify = folder / "sparsify" / "layers.2.mlp"
    sparsify.mkdir(parents=True)
    save_file({"encoder.weight": torch.randn(d_sae, HIDDEN, generator=g), "encoder.bias": torch.zeros(d_sae),
               "W_dec": torch.randn(d_sae, HIDDEN, generator=g) * 0.1, "b_dec": torch.zeros(HIDDEN)},
              sparsify / "sae.safetensors")
    (sparsify / "cfg.json").write_text(json.dumps({"activation": "topk", "num_latents": d_sae, "k": 4, "d_in": HIDDEN}))
    (sparsify.parent / "config.json").write_text(json.dumps({"model": model_name}))


def test_condacc_task_vectors_attention_and_published_saes_reach_the_report(tmp_path, tiny_llama, tiny_data):
    config = tiny_config(tiny_llama, tiny_data)
    config["tasks"] = {"sst2": config["tasks"]["sst2"]}
    config["quality"] = {"definition": "condacc", "condacc": {"k": 2, "sets": 3}}
    config["task_vector"] = {"tasks": ["sst2"], "pool": 8}
    config["attention"] = {"tasks": ["sst2"], "calibration": 4}
    published_saes(tmp_path / "saes", tiny_llama.name)
    config["sae"]["pretrained"] = {"tiny": str(tmp_path / "saes")}
    workdir = make_workspace(tmp_path / "wf", config)
    snakemake(workdir)

    base = workdir / "results/tiny/sst2"
    quality = pl.read_parquet(base / "quality_condacc.parquet")
    prompts = pl.read_parquet(base / "condacc_prompts.parquet")
    candidates = pl.read_parquet(base / "prompts/candidates.parquet")
    assert quality.height == candidates.height == 10 and not (base / "quality.parquet").exists()
    # 10 candidates, k = 2, 3 rounds: 15 prompts, each scored on the 4 quality queries.
    assert prompts.height == 15 * 4 and (quality["n_prompts"] == 3).all()
    assert prompts["cand_ids"].unique(maintain_order=True).to_list() == draw_prompts(list(range(10)), 2, 3, 0)
    per_prompt = prompts.group_by("prompt_id").agg(pl.col("correct").mean(), pl.col("cand_ids").first())
    for row in quality.iter_rows(named=True):
        mine = per_prompt.filter(pl.col("cand_ids").list.contains(row["cand_id"]))
        assert row["accuracy"] == pytest.approx(mine["correct"].mean())

    # Reliability of CondAcc: split halves of the queries of its candidate x query matrix.
    by_query = pl.read_parquet(base / "quality_condacc_by_query.parquet")
    assert by_query.height == 10 * 4
    means = by_query.group_by("cand_id").agg(pl.col("gold_logprob").mean()).sort("cand_id")
    assert means["gold_logprob"].to_numpy() == pytest.approx(quality.sort("cand_id")["gold_logprob"].to_numpy())
    reliability = pl.read_parquet(base / "reliability.parquet")
    assert set(reliability["candidates"]) == {10} and set(reliability["queries"]) == {4}

    tv = pl.read_parquet(base / "tv_features/prompt/resid.parquet")
    assert tv.height == 10 * LAYERS and tv["tv_cosine"].is_between(-1, 1).all() and (tv["tv_norm"] > 0).all()
    pool = pl.read_parquet(base / "prompts/task_vector_pool.parquet")
    assert pool.height == 8 and not set(pool["record_id"]) & set(candidates["record_id"])

    table = pl.read_csv(workdir / "results/report/spearman.csv")
    assert set(table["lens"]) == {"moments", "massive", "sae", "task_vector", "attention", "controls"}
    tv_rows = table.filter(pl.col("lens") == "task_vector")
    # Degenerate CondAcc metrics (a tiny model's accuracy can be constant) are reported, not correlated.
    n_metrics = len(usable_metrics(quality, list(config["report"]["quality_metrics"])))
    assert n_metrics >= 1
    assert tv_rows.height == len(TASK_VECTOR_FEATURES) * LAYERS * n_metrics
    assert set(zip(tv_rows["mask"], tv_rows["site"])) == {("prompt", "resid")}
    # Correlated against CondAcc: the rho the report shows is Spearman's over this quality table.
    from scipy import stats

    row = tv_rows.filter((pl.col("feature") == "tv_norm") & (pl.col("layer") == 1) & (pl.col("quality") == "gold_logprob")).row(0, named=True)
    x = tv.filter(pl.col("layer") == 1).sort("cand_id")["tv_norm"].to_numpy()
    y = quality.sort("cand_id")["gold_logprob"].to_numpy()
    assert row["rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    sae_rows = table.filter(pl.col("lens") == "sae")
    assert sae_rows.height == len(SAE_FEATURES) * 2 * n_metrics and set(sae_rows["layer"]) == {0, 2}
    sae_quality = pl.read_parquet(base / "sae_quality/causal/mlp_out.parquet")
    assert sae_quality["sae_dir"].to_list() == [str(tmp_path / "saes/saelens/blocks.0.hook_mlp_out"),
                                                str(tmp_path / "saes/sparsify/layers.2.mlp")]
    assert sae_quality["k"].to_list() == [None, 4] and np.isfinite(sae_quality["store_explained_variance"].to_numpy()).all()
    assert not (workdir / "results/tiny/sst2/sae").exists()  # published weights: nothing trained
    # The attention lens runs build_prompts' probe queries; its calibration records are neither
    # candidates nor (by content) quality or probe queries.
    probes = pl.read_parquet(base / "prompts/probe_queries.parquet")
    calibration = pl.read_parquet(base / "prompts/attention_calibration.parquet")
    queries = pl.read_parquet(base / "prompts/quality_queries.parquet")
    assert probes.height == 4 and calibration.height == 8 and calibration["record_id"].n_unique() == 8
    assert not set(calibration["record_id"]) & set(candidates["record_id"])
    calibration_queries = set(calibration.filter(pl.col("role") == "query")["text"])
    assert len(calibration_queries) == 4 and not calibration_queries & (set(probes["query"]) | set(queries["query"]))
    assert not set(probes["query"]) & set(queries["query"])
    heads = pl.read_parquet(base / "attention_heads.parquet")
    best = heads.filter(pl.col("best")).row(0, named=True)
    assert best["calibration_label_attention"] == heads["calibration_label_attention"].max()
    attn_rows = table.filter(pl.col("lens") == "attention")
    assert attn_rows.height == (len(ATTENTION_FEATURES["probe"]) * LAYERS + len(ATTENTION_FEATURES["best_head"])) * n_metrics
    assert set(attn_rows.filter(pl.col("mask") == "best_head")["layer"]) == {best["layer"]}
    head_features = pl.read_parquet(base / "attn_features/best_head/attn.parquet")
    assert (head_features["head"] == best["head"]).all() and head_features["kato_affinity"].is_between(-1, 1).all()
    # Both lenses join the task's family: their stores' nulls are in the family's maximum.
    family_max = pl.read_parquet(workdir / "results/report/null_max.parquet").sort("permutation")["max_abs_rho"]
    lens_max = []
    for null in ("tv_null/prompt/resid", "attn_null/probe/attn", "attn_null/best_head/attn"):
        store = pl.read_parquet(base / f"{null}.parquet").group_by("permutation").agg(pl.col("max_abs_rho").max())
        store_max = store.sort("permutation")["max_abs_rho"].to_numpy()
        assert len(store_max) == len(family_max) and (store_max <= family_max.to_numpy() + 1e-12).all()
        lens_max.append(store_max)
    # In some permutations the new lenses hold the family's maximum: they are in the family.
    assert (np.max(lens_max, axis=0) == family_max.to_numpy()).any()
    assert table.filter(pl.col("lens").is_in(["task_vector", "attention"]))["in_family"].all()
    summary = (workdir / "results/report/summary.md").read_text()
    assert "| tiny | sst2 | task_vector |" in summary and "| tiny | sst2 | attention |" in summary
