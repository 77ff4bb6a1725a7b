"""Every results path comes from demoscope/paths.py: its patterns and concrete paths, no path
literal left in the rules, and no script that parses a path (scripts take their keys from
Snakemake's wildcards and params)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

import pytest

from demoscope import paths

from conftest import REPO

SCRIPTS = REPO / "workflow" / "scripts"

# Attributes that take a path apart (pathlib's, and a file's name or folder by any other
# means): a script reads the keys of its files from Snakemake instead.
PATH_PARTS = {"parts", "stem", "name", "parent", "parents", "suffix", "suffixes", "with_suffix", "with_name",
              "with_stem", "relative_to", "anchor"}
# String methods that cut or match a path by its text.
TEXT_CUTS = {"endswith", "startswith", "removesuffix", "removeprefix"}
SPLITS = {"split", "rsplit", "partition", "rpartition"}
OS_PATH = {"basename", "dirname", "split", "splitext", "relpath", "commonpath"}
PARSING_MODULES = {"re", "fnmatch", "parse"}


def rooted_at_file(node: ast.AST) -> bool:
    """`Path(__file__).resolve().parents[1]`: where the script itself lies (checkout.py puts the
    package on sys.path with it), not a results path."""
    while True:
        if isinstance(node, ast.Name):
            return node.id == "__file__"
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                node = node.func.value
            elif node.args:
                node = node.args[0]
            else:
                return False
        else:
            return False


def path_parsing(source: str) -> list[str]:
    """Each place in `source` that takes a path apart, as 'line N: code'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        what = None
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
            if any(name and name.split(".")[0] in PARSING_MODULES for name in names):
                what = "a pattern-matching module"
            elif isinstance(node, ast.ImportFrom) and any(alias.name == "glob_wildcards" for alias in node.names):
                what = "glob_wildcards"
        elif isinstance(node, ast.Attribute):
            if node.attr in PATH_PARTS and not rooted_at_file(node.value):
                what = f".{node.attr}"
            elif node.attr in OS_PATH and ast.unparse(node.value) == "os.path":
                what = f"os.path.{node.attr}"
            elif node.attr == "glob_wildcards":
                what = "glob_wildcards"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in TEXT_CUTS:
                what = f".{node.func.attr}()"
            elif node.func.attr in SPLITS and any(
                isinstance(arg, ast.Constant) and "/" in str(arg.value) or "sep" in ast.unparse(arg)
                for arg in node.args
            ):
                what = f".{node.func.attr}() on a path separator"
        if what:
            found.append(f"line {node.lineno}: {what} in `{ast.get_source_segment(source, node)}`")
    return found


@pytest.mark.parametrize(
    "code",
    [
        "strategy = Path(target).stem",
        'mask, site = Path(snakemake.input[0]).with_suffix("").parts[-2:]',
        "model = Path(p).parts[-3]",
        "folder = Path(snakemake.output[0]).parent",
        "checkpoint = output.with_name(output.name + '.pt')",
        'features = next(p for p in tables if p.endswith(store))',
        'model, task = path.split("/")[1:3]',
        "parts = path.rsplit(os.sep, 2)",
        "stem = os.path.basename(path)",
        "import re\nmask = re.search(r'/(\\w+)/', path).group(1)",
        "from snakemake.io import glob_wildcards",
    ],
)
def test_the_scan_finds_each_form_of_path_parsing(code):
    assert path_parsing(code), code


def test_the_scan_leaves_the_scripts_own_location_and_plain_io_alone():
    code = ("sys.path.insert(0, str(Path(__file__).resolve().parents[1]))\n"
            "Path(snakemake.output.summary).write_text(text)\n"
            "mask, site = snakemake.params.store['mask'], snakemake.params.store['site']\n"
            "names = ', '.join(metrics)\n")
    assert path_parsing(code) == []


def test_no_script_parses_a_path():
    scripts = sorted(SCRIPTS.glob("*.py"))
    assert len(scripts) > 30
    found = [f"{script.name} {line}" for script in scripts for line in path_parsing(script.read_text())]
    assert not found, "scripts parsing a path (pass the keys as params or use snakemake.wildcards):\n  " + "\n  ".join(
        found
    )


def test_no_results_path_literal_in_the_rules():
    files = sorted((REPO / "workflow" / "rules").glob("*.smk")) + [REPO / "Snakefile"]
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"""["'/](results|resources)/""", line)
    ]
    assert not found, "paths built outside demoscope/paths.py:\n  " + "\n  ".join(found)


def test_patterns_without_keys_concrete_paths_with_them():
    assert paths.store_table("features") == "results/{model}/{task}/features/{mask}/{site}.parquet"
    assert paths.store_table("sae_null", "m", "t", "causal", "resid") == "results/m/t/sae_null/causal/resid.parquet"
    assert paths.prompts("candidates", task="sst2") == "results/{model}/sst2/prompts/candidates.parquet"
    assert paths.evaluation(strategy="random-s0") == "results/{model}/{task}/evaluation/random-s0.parquet"
    assert paths.task_table("quality", "m", "t") == "results/m/t/quality.parquet"
    assert paths.activations(site="resid") == "results/{model}/{task}/activations/{mask}/resid.zarr"
    assert paths.sets("lm_eval.json") == "results/{model}/{task}/sets/{strategy}.lm_eval.json"
    assert paths.model_dir("tiny") == "resources/models/tiny"
    assert paths.report_file("spearman.csv") == "results/report/spearman.csv"
    assert paths.figure("rho_heatmap", "m", "t", "png") == "results/figures/rho_heatmap/m/t.png"
    assert paths.sae_pool_store() == "results/{model}/{task}/sae/pool/causal/{site}.zarr"


def test_logs_and_benchmarks_follow_the_rule_and_its_wildcards():
    assert paths.log("correlate", "model", "task", "mask", "site") == "results/logs/correlate/{model}/{task}/{mask}/{site}.log"
    assert paths.benchmark("train_sae", "model", "task", "site", "layer") == (
        "results/benchmarks/train_sae/{model}/{task}/{site}/layer_{layer}.tsv"
    )
    # A rule without wildcards: its name again, as the job's own file.
    assert paths.log("report") == "results/logs/report/report.log"
    assert paths.benchmark("write_config") == "results/benchmarks/write_config/write_config.tsv"


def test_the_sae_checkpoint_lies_beside_its_directory_not_in_it():
    directory = paths.sae_dir("m", "t", "resid", 3)
    checkpoint = paths.sae_checkpoint("m", "t", "resid", 3)
    assert directory == "results/m/t/sae/resid/layer_3"
    assert checkpoint == directory + ".checkpoint.pt" and not checkpoint.startswith(directory + "/")


@pytest.mark.parametrize(
    "call, what",
    [
        (lambda: paths.prompts("candidate"), "prompt table 'candidate'"),
        (lambda: paths.store_table("feature"), "store table 'feature'"),
        (lambda: paths.task_table("qualtiy"), "task table 'qualtiy'"),
        (lambda: paths.report_file("spearman.tsv"), "report file 'spearman.tsv'"),
        (lambda: paths.figure("heatmap"), "figure 'heatmap'"),
        (lambda: paths.sets("json"), "sets format 'json'"),
    ],
)
def test_an_unknown_file_fails_naming_the_known_ones(call, what):
    with pytest.raises(ValueError, match=re.escape(what) + ".*known: "):
        call()


def test_a_wildcard_stands_for_any_known_name():
    assert paths.store_table("{kind}", "m", "t", "a", "b") == "results/m/t/{kind}/a/b.parquet"
    assert paths.figure("{figure}") == "results/figures/{figure}/{model}/{task}.{ext}"


def test_the_module_is_light():
    probe = (f"import sys\nsys.path.insert(0, {str(REPO / 'workflow')!r})\nbefore = set(sys.modules)\n"
             "import demoscope.paths\nimport json\n"
             "print(json.dumps(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
             "('numpy', 'polars', 'torch', 'transformers', 'scipy', 'snakemake'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
