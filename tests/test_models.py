"""A model that cannot be loaded fails with a message that says what was tried."""

import pytest

from demoscope.models import ModelLoadError, describe_source, load, prepare


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
    assert "could not load model source 'demoscope-test/no-such-model' as a hub model" in message
    assert "needs network access" in message


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
