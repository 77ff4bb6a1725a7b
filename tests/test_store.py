import numpy as np
import pytest
import zarr

from demoscope.activations import store


def build(path, lengths, layers=3, hidden=5, written=None):
    acts = np.arange(layers * sum(lengths) * hidden, dtype="float32").reshape(layers, sum(lengths), hidden)
    root, _ = store.create(path, lengths, layers, hidden, "float32", 4, {"model": "m"})
    root["activations"][:] = acts
    store.mark_progress(root, len(lengths) if written is None else written)
    return acts


def test_round_trip_per_candidate_and_layer(tmp_path):
    path = tmp_path / "a.zarr"
    acts = build(path, [2, 5, 1, 4])
    store.finalize(path)
    s = store.open_store(path)
    assert s.n_candidates == 4 and s.n_layers == 3
    assert list(s.lengths()) == [2, 5, 1, 4]
    np.testing.assert_array_equal(s.candidate(1, 1), acts[1, 2:7])
    np.testing.assert_array_equal(s.tokens(2, 2, 4), acts[2, 7:12])
    assert s.attrs["model"] == "m" and s.attrs["complete"] == {"n_candidates": 4, "total_tokens": 12}
    assert s.root["activations"].chunks == (1, 4, 5)


def test_unfinished_store_is_refused(tmp_path):
    path = tmp_path / "a.zarr"
    build(path, [2, 3])
    with pytest.raises(store.StoreError, match="unfinished dump is still at its .partial path"):
        store.open_store(path)


def test_store_whose_counts_disagree_is_refused(tmp_path):
    path = tmp_path / "a.zarr"
    build(path, [2, 3])
    store.finalize(path)
    root = zarr.open_group(path, mode="r+")
    root.attrs["complete"] = {"n_candidates": 2, "total_tokens": 4}
    with pytest.raises(store.StoreError, match="counts disagree"):
        store.open_store(path)


def test_blocks_cover_every_candidate_once(tmp_path):
    path = tmp_path / "a.zarr"
    build(path, [2, 5, 1, 4, 9])
    store.finalize(path)
    blocks = list(store.open_store(path).blocks(6))
    assert blocks == [(0, 1), (1, 3), (3, 4), (4, 5)]


def test_finalize_refuses_a_store_with_unwritten_segments(tmp_path):
    path = tmp_path / "a.zarr"
    build(path, [2, 3, 4], written=2)
    with pytest.raises(store.StoreError, match="only 2 of 3 segments were written"):
        store.finalize(path)
    assert not path.exists()


def test_partial_store_resumes_only_under_the_same_fingerprint(tmp_path):
    path = tmp_path / "a.zarr"
    build(path, [2, 3, 4], written=2)
    _, done = store.create(path, [2, 3, 4], 3, 5, "float32", 4, {"model": "m"})
    assert done == 2
    _, done = store.create(path, [2, 3, 4], 3, 5, "float32", 4, {"model": "other"})
    assert done == 0


def test_tables_carry_a_row_marker_that_readers_check(tmp_path):
    import polars as pl

    from demoscope.parquet import TableError, read_table, write_parquet

    frame = pl.DataFrame({"a": [1, 2, 3]})
    write_parquet(frame, tmp_path / "t.parquet")
    assert read_table(tmp_path / "t.parquet").equals(frame)
    assert not list(tmp_path.glob(".*partial"))
    pl.DataFrame({"a": [1]}).write_parquet(tmp_path / "foreign.parquet")
    with pytest.raises(TableError, match="has no demoscope.rows completion marker"):
        read_table(tmp_path / "foreign.parquet")
    data = (tmp_path / "t.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(TableError, match="unreadable Parquet table"):
        read_table(tmp_path / "cut.parquet")


def test_a_float16_store_refuses_values_beyond_its_range(tmp_path):
    from demoscope.activations.dump import check_range

    block = np.zeros((2, 3, 4), dtype=np.float32)
    check_range(block, "float16", [5, 9], tmp_path / "s.zarr")
    block[1, 2, 0] = -70000.0
    check_range(block, "float32", [5, 9], tmp_path / "s.zarr")  # float32 holds it
    with pytest.raises(store.StoreError, match=r"beyond float16's range \(65504\) at layer 9: 70000.*compute.store_dtype: float32"):
        check_range(block, "float16", [5, 9], tmp_path / "s.zarr")


def test_a_float16_dump_stops_where_a_layer_overflows_and_leaves_no_finished_store(tiny_llama, tmp_path):
    import torch

    from demoscope.lm import models
    from demoscope.activations.dump import dump_activations

    model, tok, _ = models.load(tiny_llama, "cpu", "float32")
    with torch.no_grad():
        models.decoder_layers(model)[1].mlp.down_proj.weight.mul_(1e10)  # layer 1's MLP output far beyond 65504
    texts = ["Review: good film \nSentiment: positive", "Review: dull \nSentiment: negative"]
    with pytest.raises(store.StoreError, match=r"beyond float16's range \(65504\) at layer 1: "):
        dump_activations(model, tok, texts, tmp_path / "h.zarr", "mlp_out", "cpu", "float16", layers=[0, 1])
    assert not (tmp_path / "h.zarr").exists()
    dump_activations(model, tok, texts, tmp_path / "f.zarr", "mlp_out", "cpu", "float32", layers=[0, 1])
    assert np.isfinite(store.open_store(tmp_path / "f.zarr").candidate(1, 0)).all()
