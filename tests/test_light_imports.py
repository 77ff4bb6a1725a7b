"""Jobs that never run a model import neither torch nor transformers: each script's imports,
run in a fresh interpreter as the job would, leave both out of sys.modules. Importing torch
and transformers costs seconds per job, and the light jobs are most of a run's jobs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPTS = REPO / "workflow" / "scripts"
# Scripts that load a model or its tokenizer: torch and transformers are theirs to import.
MODEL_SCRIPTS = {"dump_activations", "dump_sae_pool", "score_quality", "evaluate", "task_sets", "embed", "zero_shot",
                 "controls", "prepare_model", "build_prompts", "sae_pool",
                 # The lenses of docs/lenses.md that run the model.
                 "condacc_quality", "task_vector", "attention_lens"}
# The SAE lens runs its SAEs with torch, never a language model.
TORCH_SCRIPTS = {"train_sae", "sae_features"}
LIGHT_SCRIPTS = sorted(p.stem for p in SCRIPTS.glob("*.py") if p.stem != "checkout")
LIGHT_SCRIPTS = [s for s in LIGHT_SCRIPTS if s not in MODEL_SCRIPTS]


def imports_of(script: str) -> str:
    """The script's module-level import statements (the log redirection left out)."""
    tree = ast.parse((SCRIPTS / f"{script}.py").read_text())
    nodes = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) and getattr(n, "module", "") != "checkout"]
    return "\n".join(ast.unparse(n) for n in nodes)


def heavy_modules(code: str) -> dict[str, bool]:
    # The package only: the scripts folder would shadow the standard library's `select`.
    probe = (f"import sys\nsys.path.insert(0, {str(REPO / 'workflow')!r})\n{code}\n"
             "import json\nprint(json.dumps({m: m in sys.modules for m in ('torch', 'transformers')}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_script_is_classified_and_the_probe_sees_torch():
    assert set(MODEL_SCRIPTS) <= {p.stem for p in SCRIPTS.glob("*.py")}
    assert "from demoscope.lm.models import resolve_device" in imports_of("train_sae")
    # The probe is not blind: a model script's imports do bring both in.
    assert heavy_modules(imports_of("build_prompts")) == {"torch": True, "transformers": True}


@pytest.mark.parametrize("script", LIGHT_SCRIPTS)
def test_light_scripts_import_neither_torch_nor_transformers(script):
    expected = {"torch": script in TORCH_SCRIPTS, "transformers": False}
    assert heavy_modules(imports_of(script)) == expected
