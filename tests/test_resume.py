"""A dump killed with SIGKILL part-way resumes where it stopped and ends identical to an uninterrupted one."""

import json
import signal
import subprocess
import sys
import time

import numpy as np

from demoscope.activations import store

from conftest import REPO, WORDS

JOB = """
import sys
sys.path.insert(0, {package!r})
from demoscope.lm import models
from demoscope.activations.dump import dump_activations
model, tok, _ = models.load({model!r}, "cpu", "float32")
texts = [" ".join({words!r}[(i * 7 + j) % {n_words}] for j in range(3 + i % 11)) for i in range(400)]
dump_activations(model, tok, texts, {out!r}, "mlp_out", "cpu", "float32", mask="causal",
                 batch_tokens=24, chunk_tokens=16, attrs={{"model": "tiny"}})
"""


def job(model_dir, out) -> list[str]:
    code = JOB.format(package=str(REPO / "workflow"), model=str(model_dir), words=WORDS, n_words=len(WORDS), out=str(out))
    return [sys.executable, "-c", code]


def progress(path) -> int:
    try:
        return json.loads((store.partial_path(path) / "zarr.json").read_text())["attributes"]["progress"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return 0


def test_sigkill_then_rerun_equals_uninterrupted(tmp_path, tiny_llama):
    killed, clean = tmp_path / "killed.zarr", tmp_path / "clean.zarr"
    proc = subprocess.Popen(job(tiny_llama, killed), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while progress(killed) < 80 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reached = progress(killed)
    assert 80 <= reached < 400, f"the dump was not killed mid-way (progress {reached})"
    assert not killed.exists() and store.partial_path(killed).exists()

    resumed = subprocess.run(job(tiny_llama, killed), capture_output=True, text=True, check=True)
    assert f"resuming {killed}: {reached} of 400 segments already written" in resumed.stderr
    subprocess.run(job(tiny_llama, clean), capture_output=True, text=True, check=True)

    a, b = store.open_store(killed), store.open_store(clean)
    for name in ("activations", "offsets", "token_ids"):
        np.testing.assert_array_equal(a.root[name][:], b.root[name][:])
    assert a.attrs == b.attrs
    assert not store.partial_path(killed).exists()
    assert not list(killed.rglob("*.partial"))
