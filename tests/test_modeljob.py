"""The model-job preamble: every script that runs torch starts through `modeljob`, and a job started
that way logs the lines benchmarks/jobs.py reads."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import jobs  # noqa: E402

SCRIPTS = REPO / "workflow" / "scripts"
# What the preamble does; a script doing it by hand has drifted from the one helper.
PREAMBLE_CALLS = {("torch", "set_num_threads"), ("models", "load"), ("jobclock", "meter")}


def calls_in(path) -> set[tuple[str, str]]:
    return {
        (node.func.value.id, node.func.attr)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
    }


def test_scripts_start_torch_and_models_only_through_modeljob():
    starting = {p.stem for p in SCRIPTS.glob("*.py") if ("modeljob", "start") in calls_in(p)}
    threads_only = {p.stem for p in SCRIPTS.glob("*.py") if ("modeljob", "torch_threads") in calls_in(p)}
    by_hand = {p.stem: sorted(calls_in(p) & PREAMBLE_CALLS) for p in SCRIPTS.glob("*.py")}
    assert {name: calls for name, calls in by_hand.items() if calls} == {}
    # The model jobs, and the SAE jobs that run torch without a language model.
    assert {"score_quality", "dump_activations", "dump_sae_pool", "evaluate", "zero_shot", "embed", "controls",
            "condacc_quality", "task_vector", "attention_lens", "task_sets", "select"} <= starting
    assert threads_only == {"train_sae", "sae_features"}


JOB = """
import sys, types
sys.path.append({scripts!r})  # after the standard library: scripts/select.py would shadow `select`
from checkout import log_to
log_to({log!r})
import torch
from demoscope.lm import modeljob
snakemake = types.SimpleNamespace(
    threads=1, config={{"compute": {{"device": "cpu"}}}}, params=types.SimpleNamespace(dtype="float32"),
    input=types.SimpleNamespace(model={model!r}),
)
model, tokenizer, device = modeljob.start(snakemake)
assert (device, model.dtype, torch.get_num_threads()) == ("cpu", torch.float32, 1)
with torch.inference_mode():
    model(input_ids=torch.ones((2, 7), dtype=torch.long))
    model(input_ids=torch.ones((1, 3), dtype=torch.long))
print("parameters", sum(p.numel() for p in model.parameters()))
"""


def test_a_job_started_by_modeljob_logs_its_first_forward_and_tokens(tiny_llama, tmp_path):
    log = tmp_path / "job.log"
    code = JOB.format(scripts=str(SCRIPTS), log=str(log), model=str(tiny_llama))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, log.read_text()[-3000:] if log.exists() else done.stderr[-3000:]
    parameters = int(done.stdout.split()[-1])
    found = jobs.read_log_text(log.read_text())
    assert found["tokens"] == 2 * 7 + 3 and found["parameters"] == parameters
    assert 0 < found["first_forward"] < 600
