"""A model that cannot be loaded fails with a message that says what was tried."""

import pytest

from demoscope.lm.models import ModelLoadError, describe_source, load, prepare


def test_sources_are_classified():
    assert describe_source("meta-llama/Llama-3.2-3B") == ("hub", "meta-llama/Llama-3.2-3B")
    assert describe_source("/models/x.gguf") == ("gguf", "/models/x.gguf")
    assert describe_source("./local-dir") == ("local", "./local-dir")


def test_missing_directory(tmp_path):
    with pytest.raises(ModelLoadError, match=f"local model directory {tmp_path / 'nope'} does not exist"):
        prepare(str(tmp_path / "nope"), tmp_path / "out")


def test_unknown_hub_id_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        prepare("demoscope-test/no-such-model", tmp_path / "out")
    message = str(err.value)
    assert "model source 'demoscope-test/no-such-model': not a local path" in message
    assert "not in the local cache" in message and "HF_HUB_OFFLINE" in message


def test_a_missing_relative_path_fails_in_seconds_naming_both_readings(tmp_path, monkeypatch):
    """`models/my-model` is a relative path and a well-formed hub id. With the hub unreachable
    (an endpoint on a closed local port, so the test never leaves the machine) transformers
    alone retries for about a minute; the one look-up fails at once."""
    import time

    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as err:
        prepare("models/my-model", tmp_path / "out")
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert f"not a local path ({tmp_path / 'models' / 'my-model'} does not exist" in message
    assert "the Hugging Face hub (http://127.0.0.1:9) is unreachable to look it up as a model id" in message
    # A source that cannot be a hub id names that reading instead, without any look-up.
    with pytest.raises(ModelLoadError, match=r"not a local path .*, and not a valid Hugging Face model id"):
        prepare("models/my-model/v2", tmp_path / "out")


def test_layers_beyond_the_depth_name_the_key(tiny_llama):
    from demoscope.lm.models import check_layers, depth

    assert depth(tiny_llama) == 3
    check_layers([0, 2], tiny_llama, "sae.layers", "tiny")
    with pytest.raises(ValueError, match=r"sae.layers: \[3, 20\] are outside model 'tiny', which has 3 decoder layers \(0..2\)"):
        check_layers([0, 3, 20], tiny_llama, "sae.layers", "tiny")


def test_corrupt_weights(tmp_path, tiny_llama):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match=f"could not load model source '{broken}' as a local model from {broken}"):
        prepare(str(broken), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_corrupt_gguf(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF but not really")
    with pytest.raises(ModelLoadError, match=f"could not load model source '{bad}' as a gguf model"):
        prepare(str(bad), tmp_path / "out")


def test_unprepared_directory_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="is not a prepared model directory"):
        load(tmp_path)


def test_prepare_round_trip(tmp_path, tiny_qwen2):
    prepare(str(tiny_qwen2), tmp_path / "out")
    model, tok, device = load(tmp_path / "out", "cpu", "float32")
    assert type(model).__name__ == "Qwen2ForCausalLM" and device == "cpu"
    assert not (tmp_path / "out.tmp").exists()
