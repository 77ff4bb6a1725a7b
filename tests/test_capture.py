"""The captured activations are the tensors the study means, checked by independent recomputation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from demoscope import models, store
from demoscope.capture import capture
from demoscope.dump import dump_activations
from demoscope.masks import budget_groups
from demoscope.models import decoder_layers

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
