"""A failed job shows its cause first: one `demoscope error:` line on the console and at the
end of its log, and bad settings stop the first job that can see them."""

import subprocess
import sys

import yaml

from conftest import REPO, make_workspace, sentiment_rows, snakemake, tiny_config, write_jsonl


def test_a_failing_script_ends_its_log_and_its_stderr_with_the_cause(tmp_path):
    log = tmp_path / "job.log"
    script = (
        f"import sys; sys.path.insert(0, {str(REPO / 'workflow' / 'scripts')!r})\n"
        "from checkout import log_to\n"
        f"log_to({str(log)!r})\n"
        "print('working', file=sys.stderr)\n"
        "def deep():\n"
        "    raise ValueError('sae.layers: [20] are outside model\\n  which has 3 layers')\n"
        "deep()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 1
    cause = "demoscope error: ValueError: sae.layers: [20] are outside model which has 3 layers"
    lines = log.read_text().splitlines()
    assert lines[0] == "working" and "Traceback (most recent call last):" in lines
    assert lines[-1] == cause
    # The console gets the cause alone; the traceback stays in the log.
    assert done.stderr.strip() == cause


def test_the_default_profile_prints_a_failed_jobs_log():
    profile = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert profile["show-failed-logs"] is True


def test_sae_layers_beyond_the_depth_stop_the_first_job_that_reads_the_model(tmp_path, tiny_llama):
    """build_prompts reads the prepared model: it names `sae.layers` before any dump, and the
    console shows the cause on one line."""
    data = tmp_path / "data"
    for split, n, seed in (("train", 40, 1), ("dev", 20, 2), ("test", 20, 3)):
        write_jsonl(data / "sst2" / f"{split}.jsonl", sentiment_rows(n, seed))
    config = tiny_config(tiny_llama, data)
    config["tasks"] = {"sst2": config["tasks"]["sst2"]}
    config["sae"]["layers"] = [0, 5]
    workdir = make_workspace(tmp_path / "ws", config)
    done = snakemake(workdir, "results/tiny/sst2/prompts/candidates.parquet", check=False)
    assert done.returncode != 0
    cause = "demoscope error: ValueError: sae.layers: [5] are outside model 'tiny', which has 3 decoder layers (0..2)"
    assert cause in done.stderr
    log = workdir / "results" / "logs" / "build_prompts" / "tiny" / "sst2.log"
    assert log.read_text().splitlines()[-1] == cause
    assert (workdir / "resources" / "models" / "tiny" / "config.json").exists()
    assert not (workdir / "results" / "tiny" / "sst2" / "prompts" / "candidates.parquet").exists()
