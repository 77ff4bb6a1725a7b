"""The SAE lens: TopK SAE training on a store, resuming, the file format, the features, the pool."""

from __future__ import annotations

import itertools
import json

import numpy as np
import polars as pl
import pytest
import torch

from demoscope.lenses.sae import train as sae_train
from demoscope.activations import store
from demoscope.data.records import Record
from demoscope.lenses.sae.io import SAEFormatError, load_sae, save_sae
from demoscope.lenses.sae.model import TopKSAE
from demoscope.lenses.sae.stream import TokenStream, first_tokens
from demoscope.lenses.sae.train import train_sae
from demoscope.lenses.sae.features import SAE_FEATURES, sae_features
from demoscope.lenses.sae.pool import draw_pool, training_records
from demoscope.data.templates import Template


@pytest.fixture(autouse=True)
def one_thread():
    """These SAEs are tiny: torch's second thread only adds synchronisation, which costs
    seconds on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_store(path, tokens: np.ndarray, lengths: list[int], chunk_tokens: int = 64, **attrs):
    """A finished store of one layer (or tokens of shape layers x total x hidden)."""
    tokens = np.asarray(tokens, dtype=np.float32)
    if tokens.ndim == 2:
        tokens = tokens[None]
    root, _ = store.create(path, lengths, tokens.shape[0], tokens.shape[2], "float32", chunk_tokens, attrs)
    root["activations"][:] = tokens
    root["token_ids"][:] = np.arange(tokens.shape[1], dtype=np.int32)
    store.mark_progress(root, len(lengths))
    store.finalize(path)
    return store.open_store(path)


def sparse_data(n_tokens: int, d_in: int, n_true: int, active: int, seed: int):
    """Tokens that are each a sum of `active` of `n_true` unit directions with magnitudes in
    [1, 3], plus Gaussian noise of 0.03 per dimension."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n_true, d_in))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    codes = np.zeros((n_tokens, n_true))
    for row in codes:
        row[rng.choice(n_true, active, replace=False)] = rng.uniform(1, 3, active)
    return codes @ directions + rng.normal(scale=0.03, size=(n_tokens, d_in)), directions


STEPS = 400


def test_recovers_the_sparse_directions(tmp_path):
    tokens, directions = sparse_data(6000, d_in=32, n_true=24, active=3, seed=0)
    lengths = [20] * 300
    data = write_store(tmp_path / "pool.zarr", tokens, lengths, chunk_tokens=1024)
    sae, record = train_sae(
        data, 0, (0, 270), (270, 300), expansion=2, k=4, steps=STEPS, batch_tokens=256, lr=3e-3, seed=0,
        skip_first=False, log=lambda text: None,
    )
    decoder = sae.W_dec.detach().numpy()
    np.testing.assert_allclose(np.linalg.norm(decoder, axis=1), 1, atol=1e-5)
    best = (directions @ decoder.T).max(axis=1)  # each true direction's closest decoder row
    assert best.min() > 0.9, np.sort(best)[:5]
    metrics = record["metrics"]
    assert metrics["held_out_explained_variance"] > 0.9
    assert metrics["held_out_l0"] <= 4 and 0 <= metrics["dead_fraction"] < 1
    assert metrics["held_out_tokens"] == 600 and metrics["train_tokens"] == 5400
    assert metrics["dead_fraction_tokens"] == 5400  # dead: silent on every training token
    assert metrics["curve"][-1]["dead_after_tokens"] == 5400  # during training: one epoch
    assert [point["step"] for point in metrics["curve"]][:2] == [0, STEPS // 20]


def small_run(data, **overrides):
    settings = dict(expansion=2, k=3, steps=40, batch_tokens=48, lr=3e-3, seed=1, buffer_tokens=100,
                    log=lambda text: None)
    return train_sae(data, 0, (0, 18), (18, 20), **{**settings, **overrides})


def test_training_resumes_from_a_checkpoint_to_the_same_bits(tmp_path, monkeypatch):
    tokens, _ = sparse_data(600, d_in=16, n_true=10, active=2, seed=1)
    data = write_store(tmp_path / "pool.zarr", tokens, [30] * 20, chunk_tokens=16)
    clean, clean_record = small_run(data)

    checkpoint = tmp_path / "layer_0.checkpoint.pt"
    saved = sae_train.save_checkpoint

    def killed_after_second(path, state):
        saved(path, state)
        if state["step"] == 20:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(sae_train, "save_checkpoint", killed_after_second)
    with pytest.raises(KeyboardInterrupt):
        small_run(data, checkpoint_path=checkpoint, checkpoint_every=10)
    assert torch.load(checkpoint, weights_only=False)["step"] == 20
    monkeypatch.setattr(sae_train, "save_checkpoint", saved)

    resumed, record = small_run(data, checkpoint_path=checkpoint, checkpoint_every=10)
    assert record["metrics"]["resumed_at"] == 20 and not checkpoint.exists()
    for name, tensor in clean.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    assert record["metrics"]["curve"] == clean_record["metrics"]["curve"]

    # A checkpoint written under other settings is not resumed.
    small_run(data, checkpoint_path=checkpoint, checkpoint_every=10, steps=25)
    other, record = small_run(data, checkpoint_path=checkpoint, checkpoint_every=10, lr=1e-3)
    assert record["metrics"]["resumed_at"] == 0


def test_token_stream_skips_to_a_step_and_visits_every_token_once_per_epoch(tmp_path):
    total = 203
    tokens = np.arange(total, dtype=np.float32)[:, None].repeat(2, axis=1)
    data = write_store(tmp_path / "s.zarr", tokens, [7] * 29, chunk_tokens=16)
    skip = first_tokens(data.offsets)
    stream = TokenStream(data.root["activations"], 0, 0, total, 10, 40, seed=3, skip=skip)
    assert stream.tokens == total - 29
    steps = []
    for step, batch in stream.batches():
        steps.append((step, batch))
        if step == 40:
            break
    later = list(itertools.islice(stream.batches(17), 24))
    assert [s for s, _ in later] == list(range(17, 41))
    for (s, b), (t, c) in zip(steps[17:], later):
        assert s == t and np.array_equal(b, c)
    per_epoch = sum(stream.sizes[u] for buffer in stream.buffers(0) for u in buffer) // 10
    # Sorted as the buffers cut them, no token repeats within an epoch and no first token appears.
    seen = np.concatenate([b[:, 0] for _, b in steps[: min(per_epoch, len(steps))]])
    assert len(np.unique(seen)) == len(seen) and not set(seen.astype(int)) & set(skip.tolist())


def hand_built_sae() -> TopKSAE:
    sae = TopKSAE(d_in=3, d_sae=5, k=2)
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [-1, 0, 1]]))
        sae.W_dec.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0.6, 0.8, 0], [0, -0.6, 0.8]]))
        sae.b_enc.copy_(torch.tensor([0.0, 0.1, -0.1, 0.0, 0.2]))
        sae.b_dec.copy_(torch.tensor([0.5, -0.5, 0.0]))
        sae.scale.fill_(2.0)
        sae.mean.copy_(torch.tensor([0.2, -0.1, 0.3]))
    return sae


def manual(x: np.ndarray, sae: TopKSAE):
    """The SAE by hand, in float64."""
    w_enc, w_dec = sae.W_enc.detach().double().numpy(), sae.W_dec.detach().double().numpy()
    b_enc, b_dec = sae.b_enc.detach().double().numpy(), sae.b_dec.detach().double().numpy()
    scale = float(sae.scale)
    pre = (x * scale - b_dec) @ w_enc.T + b_enc
    z = np.zeros_like(pre)
    for row, values in zip(z, pre):
        top = np.argsort(-values, kind="stable")[: sae.k]
        row[top] = np.maximum(values[top], 0)
    return z, (z @ w_dec + b_dec) / scale


@pytest.mark.parametrize("skip_first", [False, True])
def test_features_of_a_hand_built_sae_match_a_manual_computation(tmp_path, skip_first):
    rng = np.random.default_rng(5)
    lengths = [4, 2, 5, 3]
    x = rng.normal(size=(sum(lengths), 3))
    data = write_store(tmp_path / "c.zarr", x, lengths, chunk_tokens=4)
    sae = hand_built_sae()
    features, quality = sae_features(data, {0: sae}, top=2, skip_first=skip_first, block_tokens=6)

    z, x_hat = manual(x, sae)
    mean = sae.mean.double().numpy()
    offsets = np.cumsum([0] + lengths)
    rows, vectors = [], []
    for i in range(len(lengths)):
        part = slice(offsets[i] + skip_first, offsets[i + 1])
        error = ((x[part] - x_hat[part]) ** 2).sum()
        spread = ((x[part] - mean) ** 2).sum()
        mass = z[part].sum(axis=0)
        p = mass / mass.sum()
        vectors.append(mass / len(x[part]))
        rows.append({"sae_nmse": error / spread, "sae_l0": (z[part] > 0).sum(axis=1).mean(),
                     "sae_entropy": -(p[p > 0] * np.log(p[p > 0])).sum()})
    task = np.mean(vectors, axis=0)
    for i, row in enumerate(rows):
        row["sae_task_cosine"] = vectors[i] @ task / np.linalg.norm(vectors[i]) / np.linalg.norm(task)
        got = features.filter(pl.col("cand_id") == i).row(0, named=True)
        assert got["layer"] == 0
        for name in SAE_FEATURES:
            assert got[name] == pytest.approx(row[name], rel=1e-5, abs=1e-7), (i, name)
        order = np.argsort(-vectors[i], kind="stable")[:2]
        assert got["sae_top_ids"] == order.tolist()
        assert got["sae_top_values"] == pytest.approx(vectors[i][order].tolist(), rel=1e-5)
    kept = np.ones(len(x), bool)
    if skip_first:
        kept[offsets[:-1]] = False
    q = quality.row(0, named=True)
    assert q["store_explained_variance"] == pytest.approx(
        1 - ((x - x_hat)[kept] ** 2).sum() / ((x - mean)[kept] ** 2).sum(), rel=1e-5
    )
    assert q["store_l0"] == pytest.approx((z[kept] > 0).sum(axis=1).mean())
    assert q["store_dead_fraction"] == pytest.approx((z[kept].sum(axis=0) == 0).mean())
    starts = ((x[offsets[:-1]] - mean) ** 2).sum()
    assert q["first_token_variance_share"] == pytest.approx(starts / ((x - mean) ** 2).sum(), rel=1e-5)
    spread = np.sort(((x - mean)[kept] ** 2).sum(axis=1))
    assert q["top_tokens_variance_share"] == pytest.approx(spread[-1] / spread.sum(), rel=1e-5)  # 1% of < 100 tokens: one
    assert (q["d_sae"], q["k"]) == (5, 2) and np.isnan(q["held_out_explained_variance"])


def test_query_stores_average_a_candidates_segments(tmp_path):
    rng = np.random.default_rng(6)
    lengths = [3, 4, 2, 5, 3, 3]  # three candidates x two segments
    x = rng.normal(size=(sum(lengths), 3))
    per_segment = sae_features(write_store(tmp_path / "a.zarr", x, lengths), {0: hand_built_sae()}, skip_first=False)[0]
    paired = write_store(tmp_path / "b.zarr", x, lengths, segments_per_candidate=2)
    averaged = sae_features(paired, {0: hand_built_sae()}, skip_first=False)[0]
    assert averaged["cand_id"].to_list() == [0, 1, 2]
    for name in SAE_FEATURES:
        expected = per_segment[name].to_numpy().reshape(3, 2).mean(axis=1)
        np.testing.assert_allclose(averaged[name].to_numpy(), expected, rtol=1e-6)


def test_saved_sae_loads_back_and_published_layouts_load(tmp_path):
    sae = hand_built_sae()
    save_sae(sae, tmp_path / "mine", metrics={"held_out_explained_variance": 0.8})
    loaded = load_sae(tmp_path / "mine")
    for name, tensor in sae.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    x = torch.randn(7, 3)
    assert torch.equal(sae(x), loaded(x))
    assert loaded.info["metrics"]["held_out_explained_variance"] == 0.8
    assert json.loads((tmp_path / "mine" / "sae.json").read_text())["shapes"]["W_enc"] == [5, 3]

    # Published weights: the encoder as (d_in, d_sae), no training mean, a minimal JSON.
    from safetensors.torch import save_file

    published = tmp_path / "published"
    published.mkdir()
    save_file({"W_enc": sae.W_enc.detach().T.contiguous(), "W_dec": sae.W_dec.detach().clone(),
               "b_enc": sae.b_enc.detach().clone(), "b_dec": sae.b_dec.detach().clone()}, published / "sae.safetensors")
    (published / "sae.json").write_text(json.dumps({"d_in": 3, "d_sae": 5, "k": 2, "scale": 2.0}))
    other = load_sae(published)
    assert torch.equal(other(x), sae(x))
    assert torch.equal(other.mean, sae.b_dec.detach() / 2.0)

    (published / "sae.json").write_text(json.dumps({"d_in": 4, "d_sae": 5, "k": 2}))
    with pytest.raises(SAEFormatError, match="W_dec has shape \\[5, 3\\], but sae.json \\(d_in=4, d_sae=5\\) needs \\[5, 4\\]"):
        load_sae(published)
    with pytest.raises(SAEFormatError, match="no sae.json"):
        load_sae(tmp_path)


def test_pool_excludes_candidates_and_holds_out_its_tail():
    train = [Record(id=f"r{i}", input=f"text {i}", answer=["neg", "pos"][i % 2], options=("neg", "pos"),
                    label=["neg", "pos"][i % 2]) for i in range(60)]
    candidates = {f"r{i}" for i in range(0, 60, 3)}

    class Tokens:
        def __call__(self, text, add_special_tokens=True):
            return type("Encoded", (), {"input_ids": text.split()})()

    pool = draw_pool(train, candidates, 30, 0.2, 0, Template.from_config(None), Tokens())
    assert len(pool) == 30 and not set(pool["record_id"]) & candidates
    assert pool["held_out"].to_list() == [False] * 24 + [True] * 6 and training_records(pool) == 24
    assert pool["label"].value_counts()["count"].to_list() == [15, 15]
    assert pool["demonstration"][0].startswith("text ") and pool["n_tokens"].min() == 3
    again = draw_pool(train, candidates, 30, 0.2, 0, Template.from_config(None), Tokens())
    assert again.equals(pool)
    with pytest.raises(ValueError, match="sae.pool .*asked for 41 records but only 40 are available"):
        draw_pool(train, candidates, 41, 0.2, 0, Template.from_config(None), Tokens())


def test_a_candidate_without_tokens_has_nan_features_and_no_top_latents(tmp_path):
    rng = np.random.default_rng(8)
    lengths = [3, 1, 0, 4]  # candidate 1 has only its first token, candidate 2 none at all
    x = rng.normal(size=(sum(lengths), 3))
    features = sae_features(write_store(tmp_path / "e.zarr", x, lengths), {0: hand_built_sae()}, top=2,
                            skip_first=True)[0]
    for cand in (1, 2):
        row = features.filter(pl.col("cand_id") == cand).row(0, named=True)
        assert all(np.isnan(row[name]) for name in SAE_FEATURES), row
        assert row["sae_top_ids"] == [] and row["sae_top_values"] == []
    for cand in (0, 3):
        row = features.filter(pl.col("cand_id") == cand).row(0, named=True)
        assert not any(np.isnan(row[name]) for name in SAE_FEATURES) and len(row["sae_top_ids"]) == 2


def test_sparse_decode_backward_passes_gradcheck_in_float64():
    from demoscope.lenses.sae.model import SparseDecode

    generator = torch.Generator().manual_seed(3)
    values = torch.rand(5, 3, dtype=torch.float64, generator=generator).requires_grad_()
    weight = torch.randn(7, 4, dtype=torch.float64, generator=generator).requires_grad_()
    unique = torch.stack([torch.randperm(7, generator=generator)[:3] for _ in range(5)])  # as TopK gives
    assert torch.autograd.gradcheck(SparseDecode.apply, (values, unique, weight))
    repeated = unique.clone()
    repeated[0, 1] = repeated[0, 0]  # a latent listed twice counts twice
    assert torch.autograd.gradcheck(SparseDecode.apply, (values, repeated, weight))


def test_held_out_explained_variance_is_about_the_held_out_tokens_own_mean(tmp_path):
    from demoscope.lenses.sae.train import evaluate

    rng = np.random.default_rng(9)
    x = rng.normal(size=(40, 3)) + np.array([4.0, -2.0, 1.0])  # far from the SAE's training mean
    data = write_store(tmp_path / "h.zarr", x, [40])
    sae = hand_built_sae()
    _, x_hat = manual(x, sae)
    error = ((x - x_hat) ** 2).sum()
    got = evaluate(sae, data.root["activations"], 0, 0, 40, block_tokens=7)
    assert got["explained_variance"] == pytest.approx(1 - error / ((x - x.mean(axis=0)) ** 2).sum(), rel=1e-6)
    about_training = ((x - sae.mean.double().numpy()) ** 2).sum()
    assert got["explained_variance_training_mean"] == pytest.approx(1 - error / about_training, rel=1e-6)
    # The training mean's baseline credits the SAE with the shift of the mean: a larger number.
    assert got["explained_variance_training_mean"] > got["explained_variance"]
    assert got["tokens"] == 40
