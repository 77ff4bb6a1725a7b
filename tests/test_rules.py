"""The rule files: each rule's code hash follows what its script really imports, and the rules
pass `snakemake --lint` and `snakefmt --check`."""

from __future__ import annotations

import modulefinder
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from demoscope.codehash import closure, code_hash, script_code, script_hash

from conftest import REPO

RULES_DIR = REPO / "workflow" / "rules"


def rule_blocks() -> list[tuple[str, str, str]]:
    """(rule file, rule name, rule text) of every rule and checkpoint in workflow/rules."""
    blocks = []
    for smk in sorted(RULES_DIR.glob("*.smk")):
        for block in re.split(r"^(?=(?:rule|checkpoint) )", smk.read_text(), flags=re.M)[1:]:
            blocks.append((smk.name, re.match(r"\w+ (\w+):", block).group(1), block))
    return blocks


def script_of(block: str) -> str | None:
    """The stem of a rule's `script:` (scripts/<stem>.py), None when it has none."""
    found = re.search(r"^    script:\s*\n\s*\"\.\./scripts/(\w+)\.py\"", block, re.M)
    return found.group(1) if found else None


def test_no_rule_uses_a_hand_written_code_list():
    """A rule merged with the old `code=code_hash("a", "b")` form lists here; replace the
    line with `code=script_code("<its script's stem>")`."""
    stale = [
        f"{smk}: rule {name} (script {script_of(block)}.py)"
        for smk, name, block in rule_blocks()
        if "code_hash(" in block
    ]
    assert not stale, "rules still hashing a hand-written module list:\n  " + "\n  ".join(stale)


def test_each_rule_hashes_its_own_script():
    """`script_code` names the script by hand; it must be the rule's own `script:`."""
    blocks = [(smk, name, block) for smk, name, block in rule_blocks() if script_of(block)]
    assert len(blocks) >= 27
    wrong = []
    for smk, name, block in blocks:
        codes = re.findall(r"^        code=(.*),$", block, re.M)
        if codes != [f'script_code("{script_of(block)}")']:
            wrong.append(f"{smk}: rule {name} has code={codes} for script {script_of(block)}.py")
    assert not wrong, "\n".join(wrong)


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory) -> Path:
    """A copy of workflow/ whose modules the tests may edit."""
    root = tmp_path_factory.mktemp("codehash") / "workflow"
    shutil.copytree(REPO / "workflow", root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def imported_files(script: Path, workflow: Path) -> set[Path]:
    """The local files `script` imports according to the standard library's modulefinder (a
    bytecode scan, independent of the AST walk under test), confined to `workflow`."""
    finder = modulefinder.ModuleFinder(path=[str(script.parent), str(workflow)])
    finder.run_script(str(script))
    files = {Path(module.__file__).resolve() for module in finder.modules.values() if module.__file__}
    return {path for path in files if path.is_relative_to(workflow) and path != script.resolve()}


def rule_scripts(workflow: Path) -> list[Path]:
    stems = {script_of(block) for _, _, block in rule_blocks()} - {None}
    return [workflow / "scripts" / f"{stem}.py" for stem in sorted(stems)]


def test_closure_is_what_modulefinder_finds(workflow_copy):
    for script in rule_scripts(workflow_copy):
        found = set(closure(script, workflow_copy / "demoscope").values())
        assert found == imported_files(script, workflow_copy.resolve()), script.name
    # Scripts reach their modules through the package and through the helper beside them.
    figures = closure(workflow_copy / "scripts" / "plot_rho_by_layer.py", workflow_copy / "demoscope")
    assert {"demoscope", "demoscope.report.figures", "checkout"} <= set(figures)


def test_editing_an_imported_module_changes_exactly_the_rules_that_import_it(workflow_copy):
    """For every local module: the hash of every rule whose script imports it (transitively)
    changes when it is edited, every other rule's stays."""
    package = workflow_copy / "demoscope"
    scripts = rule_scripts(workflow_copy)
    imports = {script: imported_files(script, workflow_copy.resolve()) for script in scripts}
    before = {script: script_hash(script, package) for script in scripts}
    modules = sorted(package.rglob("*.py")) + sorted((workflow_copy / "scripts").glob("*.py"))
    assert len(modules) > 40
    for module in modules:
        original = module.read_text()
        module.write_text(original + "\nEDITED = True\n")
        try:
            changed = {script for script in scripts if script_hash(script, package) != before[script]}
        finally:
            module.write_text(original)
        expected = {script for script in scripts if module.resolve() in imports[script]}
        assert changed == expected, (module.name, sorted(s.name for s in changed ^ expected))
    assert {script: script_hash(script, package) for script in scripts} == before
    # No rule script escapes the check by importing nothing local: each imports the helper.
    assert all(imports[script] for script in scripts)


def test_closure_follows_every_import_form(tmp_path):
    """Absolute, relative and package imports, imports inside functions, subpackages; the
    standard library and third parties are not followed."""
    package = tmp_path / "demoscope"
    (package / "stats").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from . import b\nfrom .stats.null import draw\n",
        "b.py": "import numpy\n",
        "c.py": "def late():\n    import demoscope.d\n",
        "d.py": "from .e import *\n",
        "e.py": "import os\n",
        "f.py": "from demoscope import g\n",
        "g.py": "",
        "unused.py": "",
        "stats/__init__.py": "from ..b import x\n",
        "stats/null.py": "from . import fdr\n",
        "stats/fdr.py": "",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "helper.py").write_text("from demoscope.c import late\n")
    (scripts / "run.py").write_text("import helper\nimport sys\nfrom demoscope.a import thing\nfrom demoscope import f\n")
    found = closure(scripts / "run.py", package)
    assert set(found) == {
        "helper", "demoscope", "demoscope.a", "demoscope.b", "demoscope.c", "demoscope.d", "demoscope.e",
        "demoscope.f", "demoscope.g", "demoscope.stats", "demoscope.stats.null", "demoscope.stats.fdr",
    }
    assert found["demoscope.stats"] == package / "stats" / "__init__.py"
    before = script_code("run", scripts)
    (package / "unused.py").write_text("X = 1\n")
    assert script_code("run", scripts) == before
    (package / "stats" / "fdr.py").write_text("X = 1\n")
    assert script_code("run", scripts) != before


def test_code_hash_of_named_modules_still_works(tmp_path):
    """The old form stays callable so that rules merged from older branches still run."""
    for name in ("a", "b"):
        (tmp_path / f"{name}.py").write_text(f"{name} = 1\n")
    before = code_hash("a", package_dir=tmp_path)
    (tmp_path / "b.py").write_text("b = 2\n")
    assert code_hash("a", package_dir=tmp_path) == before
    (tmp_path / "a.py").write_text("a = 2\n")
    assert code_hash("a", package_dir=tmp_path) != before


def run_in_repo(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True)


def test_snakemake_lint_is_clean():
    """`snakemake --lint` exits 1 on any finding (its json mode is not passed through by the
    CLI of Snakemake 9, so the exit status and the all-clear line are what there is)."""
    done = run_in_repo(sys.executable, "-m", "snakemake", "--lint")
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "Congratulations, your workflow is in a good condition" in output, output


def test_snakefmt_check_is_clean():
    done = run_in_repo(sys.executable, "-m", "snakefmt", "--check", "workflow/", "Snakefile")
    assert done.returncode == 0, done.stdout + done.stderr
