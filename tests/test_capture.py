"""The captured activations are the tensors the study means, checked by independent recomputation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from demoscope.lm import models
from demoscope.activations import store
from demoscope.activations.capture import capture, capture_sites
from demoscope.activations.dump import dump_activations
from demoscope.activations.masks import budget_groups
from demoscope.lm.models import decoder_layers

TEXTS = ["Review: good film \nSentiment: positive", "Review: dull \nSentiment: negative",
         "Question: which rock?\nAnswer: gas light sound water"]


def test_captured_mlp_output_equals_manual_mlp(tiny_llama):
    model, tok, device = models.load(tiny_llama, "cpu", "float32")
    layer = decoder_layers(model)[1]
    mlp_inputs = {}
    handle = layer.post_attention_layernorm.register_forward_hook(lambda m, a, out: mlp_inputs.setdefault("x", out))
    ids = torch.tensor([tok(TEXTS[0]).input_ids])
    with capture(model, "mlp_out") as captured, torch.no_grad():
        model.model(input_ids=ids)
    handle.remove()
    x, mlp = mlp_inputs["x"][0], layer.mlp
    manual = (F.silu(x @ mlp.gate_proj.weight.T) * (x @ mlp.up_proj.weight.T)) @ mlp.down_proj.weight.T
    torch.testing.assert_close(captured[1][0], manual, atol=1e-5, rtol=1e-4)


def test_resid_site_is_the_decoder_layer_output(tiny_qwen2):
    model, tok, _ = models.load(tiny_qwen2, "cpu", "float32")
    ids = torch.tensor([tok(TEXTS[1]).input_ids])
    with capture(model, "resid") as captured, torch.no_grad():
        out = model.model(input_ids=ids, output_hidden_states=True)
    # hidden_states[i + 1] is layer i's output, except the last, which has the final norm applied.
    for i in range(len(decoder_layers(model)) - 1):
        torch.testing.assert_close(captured[i], out.hidden_states[i + 1])


def test_dump_stores_every_token_of_every_demonstration(tiny_llama, tmp_path):
    model, tok, _ = models.load(tiny_llama, "cpu", "float32")
    path = tmp_path / "d.zarr"
    dump_activations(model, tok, TEXTS, path, "mlp_out", "cpu", "float32", batch_tokens=20, chunk_tokens=8)
    s = store.open_store(path)
    assert list(s.lengths()) == [len(tok(t).input_ids) for t in TEXTS]
    for i, text in enumerate(TEXTS):
        ids = torch.tensor([tok(text).input_ids])
        with capture(model, "mlp_out") as captured, torch.no_grad():
            model.model(input_ids=ids)  # alone, unpadded
        for layer in range(s.n_layers):
            np.testing.assert_allclose(s.candidate(layer, i), captured[layer][0].numpy(), atol=1e-5)
    np.testing.assert_array_equal(s.root["token_ids"][:], sum((tok(t).input_ids for t in TEXTS), []))


def test_batches_are_consecutive_and_bounded():
    batches = budget_groups([5, 5, 9, 2, 2, 2, 30], batch_tokens=18)
    assert batches == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert [i for a, b in batches for i in range(a, b)] == list(range(7))


def test_packed_groups_bound_the_sum_not_the_padded_size():
    assert budget_groups([5, 5, 9, 2, 2, 2, 30], batch_tokens=18, padded=False) == [(0, 2), (2, 6), (6, 7)]


def dump_alone(model, tok, path, site):
    dump_activations(model, tok, TEXTS * 3, path, site, "cpu", "float32", batch_tokens=20, chunk_tokens=8)
    return store.open_store(path)


def assert_same_store(a, b):
    for name in ("activations", "offsets", "token_ids"):
        np.testing.assert_array_equal(a.root[name][:], b.root[name][:])
    assert a.attrs == b.attrs


def test_one_forward_fills_every_site_as_separate_dumps_would(tiny_llama, tmp_path, monkeypatch, capsys):
    model, tok, _ = models.load(tiny_llama, "cpu", "float32")
    alone = {site: dump_alone(model, tok, tmp_path / f"alone-{site}.zarr", site) for site in ("mlp_out", "resid")}
    # A first dump of mlp_out alone dies after its second batch, leaving a partial store; the
    # two-site dump then resumes that store, starts the other afresh, and both match.
    paths = {site: tmp_path / f"both-{site}.zarr" for site in ("mlp_out", "resid")}
    real = store.mark_progress

    def dying(root, segments_done):
        if segments_done > 2:
            raise RuntimeError("killed")
        real(root, segments_done)

    monkeypatch.setattr(store, "mark_progress", dying)
    with pytest.raises(RuntimeError, match="killed"):
        dump_alone(model, tok, paths["mlp_out"], "mlp_out")
    monkeypatch.setattr(store, "mark_progress", real)
    assert store.partial_path(paths["mlp_out"]).exists() and not paths["mlp_out"].exists()
    capsys.readouterr()
    dump_activations(model, tok, TEXTS * 3, [paths["mlp_out"], paths["resid"]], ["mlp_out", "resid"], "cpu",
                     "float32", batch_tokens=20, chunk_tokens=8)
    err = capsys.readouterr().err
    assert f"resuming {paths['mlp_out']}: 2 of 9 segments already written" in err and "both-resid" not in err
    for site, path in paths.items():
        assert_same_store(store.open_store(path), alone[site])
        assert not store.partial_path(path).exists()
    with pytest.raises(ValueError, match="2 sites"):
        dump_activations(model, tok, TEXTS, [tmp_path / "x.zarr"], ["mlp_out", "resid"], "cpu", "float32")


def tiny_family(family: str):
    """A tiny random model of one architecture family, its norms' weights randomised so that a
    norm is never close to the identity."""
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig, Qwen2Config

    common = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64)
    config = {"llama": LlamaConfig, "qwen2": Qwen2Config}.get(family)
    config = config(**common) if config else Gemma3TextConfig(**common, head_dim=8, sliding_window=16)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).float().eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.5)
    return model


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3"])
def test_mlp_out_is_what_the_mlp_adds_to_the_residual_stream(family):
    """Layer 1 decomposed by hand: resid_after = resid_before + attention part + mlp_out, and
    mlp_out recomputed from the mid-layer residual with the family's own MLP (and norms)."""
    model = tiny_family(family)
    layer = decoder_layers(model)[1]
    gemma = hasattr(layer, "post_feedforward_layernorm")
    assert gemma == (family == "gemma3")
    attn_site = layer.post_attention_layernorm if gemma else layer.self_attn
    parts = {}
    def keep(module, args, out):  # returns None: the forward goes on unchanged
        parts["attn"] = out[0] if isinstance(out, tuple) else out

    handle = attn_site.register_forward_hook(keep)
    ids = torch.randint(0, 64, (1, 9))
    with capture(model, "resid") as resid, capture(model, "mlp_out") as mlp_out, torch.no_grad():
        model.model(input_ids=ids)
    handle.remove()
    before, after, attn = resid[0][0], resid[1][0], parts["attn"][0]
    torch.testing.assert_close(after, before + attn + mlp_out[1][0], atol=1e-5, rtol=1e-5)
    mid = before + attn
    with torch.no_grad():
        if gemma:
            manual = layer.post_feedforward_layernorm(layer.mlp(layer.pre_feedforward_layernorm(mid)))
            raw = layer.mlp(layer.pre_feedforward_layernorm(mid))
            assert (raw - mlp_out[1][0]).abs().max() > 1e-2  # the pre-norm tensor is not what is added
        else:
            manual = layer.mlp(layer.post_attention_layernorm(mid))
    torch.testing.assert_close(mlp_out[1][0], manual, atol=1e-5, rtol=1e-5)
    # One forward hooking both sites (as a dump job does) captures the same tensors.
    with capture_sites(model, ["mlp_out", "resid"]) as both, torch.no_grad():
        model.model(input_ids=ids)
    for layer_index in (0, 1):
        torch.testing.assert_close(both["mlp_out"][layer_index], mlp_out[layer_index])
        torch.testing.assert_close(both["resid"][layer_index], resid[layer_index])
