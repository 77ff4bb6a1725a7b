"""Published SAEs: SAELens and sparsify folders, written as those libraries write them, read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from demoscope.lenses.sae.io import SAEFormatError
from demoscope.lenses.sae.features import sae_features
from demoscope.lenses.sae.published import describe, hook_site, load_any, locate

D_IN, D_SAE = 6, 10


def weights(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "W_enc": torch.randn(D_IN, D_SAE, generator=g),  # SAELens orientation
        "W_dec": torch.randn(D_SAE, D_IN, generator=g),
        "b_enc": torch.randn(D_SAE, generator=g) * 0.3,
        "b_dec": torch.randn(D_IN, generator=g) * 0.3,
        "threshold": torch.rand(D_SAE, generator=g) * 0.8,
    }


def write_saelens(folder, architecture: str, w: dict, flat: bool = False, apply_b_dec: bool = True, k: int = 3,
                  model: str = "gemma-2-2b", hook: str = "blocks.2.hook_resid_post", **extra):
    """SAE.save_model: `sae_weights.safetensors` (the state dict) and `cfg.json` (cfg.to_dict()).
    SAELens >= 6 nests model and hook under `meta`; < 6 wrote them at the top level."""
    folder.mkdir(parents=True)
    tensors = {name: w[name].contiguous() for name in ("W_enc", "W_dec", "b_enc", "b_dec")}
    if architecture == "jumprelu":
        tensors["threshold"] = w["threshold"].contiguous()
    save_file(tensors, folder / "sae_weights.safetensors")
    cfg = {"d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": apply_b_dec,
           "normalize_activations": "none", "reshape_activations": "none", "architecture": architecture}
    if architecture == "topk":
        cfg["k"] = k
    meta = {"model_name": model, "hook_name": hook, "hook_layer": 2, "hook_head_index": None, "context_size": 128}
    cfg.update(meta) if flat else cfg.update(meta=meta)
    cfg.update(extra)
    (folder / "cfg.json").write_text(json.dumps(cfg))


def write_sparsify(folder, w: dict, k: int = 3, transposed: bool = False, model: str = "EleutherAI/pythia-70m"):
    """SparseCoder.save_to_disk: `sae.safetensors` (encoder.weight, encoder.bias, W_dec, b_dec) and
    `cfg.json` (the SparseCoderConfig plus d_in); the trainer's `config.json` one level up."""
    folder.mkdir(parents=True)
    w_dec = w["W_dec"].T if transposed else w["W_dec"]
    save_file({"encoder.weight": w["W_enc"].T.contiguous(), "encoder.bias": w["b_enc"].contiguous(),
               "W_dec": w_dec.contiguous(), "b_dec": w["b_dec"].contiguous()}, folder / "sae.safetensors")
    cfg = {"activation": "topk", "expansion_factor": 32, "normalize_decoder": True, "num_latents": D_SAE, "k": k,
           "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": D_IN}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    (folder.parent / "config.json").write_text(json.dumps({"model": model, "sae": cfg}))


def direct(x: np.ndarray, w: dict, activation: str, apply_b_dec: bool = True, k: int = 3):
    """The libraries' forward by hand in float64: codes z and reconstruction."""
    n = {name: t.double().numpy() for name, t in w.items()}
    pre = (x - (n["b_dec"] if apply_b_dec else 0)) @ n["W_enc"] + n["b_enc"]
    if activation == "relu":
        z = np.maximum(pre, 0)
    elif activation == "jumprelu":
        z = np.where(pre > n["threshold"], np.maximum(pre, 0), 0.0)
    else:
        z = np.zeros_like(pre)
        for row, values in zip(z, pre):
            top = np.argsort(-values)[:k]
            row[top] = np.maximum(values[top], 0)
    return z, z @ n["W_dec"] + n["b_dec"]


@pytest.mark.parametrize(
    "architecture,activation,flat,apply_b_dec",
    [("standard", "relu", False, True), ("jumprelu", "jumprelu", False, True), ("topk", "topk", False, True),
     ("standard", "relu", True, False), ("jumprelu", "jumprelu", True, True)],
)
def test_saelens_reconstructions_match_a_direct_computation(tmp_path, architecture, activation, flat, apply_b_dec):
    w = weights(1)
    write_saelens(tmp_path / "sae", architecture, w, flat=flat, apply_b_dec=apply_b_dec)
    sae = load_any(tmp_path / "sae", "resid", 2, "google/gemma-2-2b")
    x = np.random.default_rng(2).normal(size=(40, D_IN))
    z, x_hat = direct(x, w, activation, apply_b_dec)
    assert 1 < (z > 0).sum(axis=1).mean() < D_SAE - 2  # the activation zeroes some latents, not all
    with torch.no_grad():
        dense = sae.latents(torch.tensor(x, dtype=torch.float32)).double().numpy()
        np.testing.assert_allclose(sae(torch.tensor(x, dtype=torch.float32)).double().numpy(), x_hat, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dense, z, rtol=1e-4, atol=1e-5)
    assert sae.info["hook"] == "blocks.2.hook_resid_post" and sae.info["model"] == "gemma-2-2b"


@pytest.mark.parametrize("transposed", [False, True])
def test_sparsify_reconstructions_match_a_direct_computation(tmp_path, transposed):
    w = weights(3)
    write_sparsify(tmp_path / "run" / "layers.1.mlp", w, k=3, transposed=transposed)
    sae = load_any(tmp_path / "run" / "layers.1.mlp", "mlp_out", 1, "EleutherAI/pythia-70m")
    x = np.random.default_rng(4).normal(size=(30, D_IN))
    _, x_hat = direct(x, w, "topk", k=3)
    with torch.no_grad():
        np.testing.assert_allclose(sae(torch.tensor(x, dtype=torch.float32)).double().numpy(), x_hat, rtol=1e-4, atol=1e-5)
    assert sae.k == 3 and describe(tmp_path / "run" / "layers.1.mlp")["model"] == "EleutherAI/pythia-70m"


def test_hook_names_map_to_sites():
    assert hook_site("blocks.7.hook_resid_post") == ("resid", 7)
    assert hook_site("blocks.7.hook_resid_pre") == ("resid", 6)
    assert hook_site("blocks.7.hook_mlp_out") == ("mlp_out", 7)
    assert hook_site("layers.3") == ("resid", 3)
    assert hook_site("layers.3.mlp") == ("mlp_out", 3)
    assert hook_site("model.layers.3.mlp") == ("mlp_out", 3)
    with pytest.raises(SAEFormatError, match="embeddings"):
        hook_site("blocks.0.hook_resid_pre")
    with pytest.raises(SAEFormatError, match="blocks.3.attn.hook_z.*not one demoscope captures"):
        hook_site("blocks.3.attn.hook_z")


def test_locate_finds_a_published_folder_by_its_hook_and_checks_what_it_was_trained_on(tmp_path):
    w = weights(5)
    release = tmp_path / "release"
    write_saelens(release / "blocks.2.hook_resid_post", "standard", w)
    write_saelens(release / "blocks.2.hook_mlp_out", "standard", w, hook="blocks.2.hook_mlp_out")
    write_sparsify(tmp_path / "sparsify" / "layers.0", w)
    assert locate(release, "resid", 2) == str(release / "blocks.2.hook_resid_post")
    assert locate(release, "mlp_out", 2) == str(release / "blocks.2.hook_mlp_out")
    assert locate(tmp_path / "sparsify", "resid", 0) == str(tmp_path / "sparsify" / "layers.0")
    with pytest.raises(SAEFormatError, match="holds no SAE of resid at layer 1"):
        locate(release, "resid", 1)
    with pytest.raises(SAEFormatError, match="trained on model 'gemma-2-2b', but the config's model source is 'Qwen/Qwen2.5-3B'"):
        load_any(release / "blocks.2.hook_resid_post", "resid", 2, "Qwen/Qwen2.5-3B")
    with pytest.raises(SAEFormatError, match="hook 'blocks.2.hook_mlp_out' \\(mlp_out at layer 2\\), but is used for resid"):
        load_any(release / "blocks.2.hook_mlp_out", "resid", 2, "gemma-2-2b")


def test_bad_published_files_stop_with_a_message_naming_them(tmp_path):
    w = weights(6)
    write_saelens(tmp_path / "a", "standard", {**w, "W_dec": torch.randn(D_SAE, D_IN + 1)})
    with pytest.raises(SAEFormatError, match="sae_weights.safetensors: W_dec has shape \\[10, 7\\].*needs \\[10, 6\\]"):
        load_any(tmp_path / "a")
    write_saelens(tmp_path / "b", "jumprelu", w, normalize_activations="expected_average_only_in")
    with pytest.raises(SAEFormatError, match="cfg.json: normalize_activations='expected_average_only_in'"):
        load_any(tmp_path / "b")
    write_saelens(tmp_path / "c", "gated", w)
    with pytest.raises(SAEFormatError, match="architecture 'gated'"):
        load_any(tmp_path / "c")
    with pytest.raises(SAEFormatError, match="holds no SAE"):
        load_any(tmp_path)


def write_store(path, x, lengths):
    from demoscope.activations import store

    root, _ = store.create(path, lengths, 1, x.shape[1], "float32", 8, {})
    root["activations"][:] = x[None].astype(np.float32)
    root["token_ids"][:] = np.arange(len(x), dtype=np.int32)
    store.mark_progress(root, len(lengths))
    store.finalize(path)
    return store.open_store(path)


def test_features_of_a_jumprelu_sae_match_a_direct_computation(tmp_path):
    """A JumpReLU code's L0 varies by token; the zero-padded code gives the dense code's features."""
    w = weights(7)
    write_saelens(tmp_path / "sae", "jumprelu", w)
    sae = load_any(tmp_path / "sae")
    lengths = [5, 3, 6]
    x = np.random.default_rng(8).normal(size=(sum(lengths), D_IN))
    features, quality = sae_features(write_store(tmp_path / "s.zarr", x, lengths), {0: sae}, top=2, skip_first=False,
                                     block_tokens=7)
    z, x_hat = direct(x, w, "jumprelu")
    mean = w["b_dec"].double().numpy()
    offsets = np.cumsum([0] + lengths)
    for i in range(len(lengths)):
        part = slice(offsets[i], offsets[i + 1])
        row = features.row(i, named=True)
        nmse = ((x[part] - x_hat[part]) ** 2).sum() / ((x[part] - mean) ** 2).sum()
        assert row["sae_nmse"] == pytest.approx(nmse, rel=1e-4)
        assert row["sae_l0"] == pytest.approx((z[part] > 0).sum(axis=1).mean())
    assert quality["k"][0] is None and quality["d_sae"][0] == D_SAE
