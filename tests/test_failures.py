"""A failed job shows its cause first: one `demoscope error:` line on the console and at the
end of its log (tests/test_workflow.py::test_a_layer_outside_the_model_stops_with_the_key_named
sees it from a real job)."""

import subprocess
import sys

import yaml

from conftest import REPO


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


def test_a_metered_model_job_that_fails_still_ends_with_the_cause(tmp_path):
    """jobclock logs its tokens line at exit, after the excepthook: a failing job leaves it out
    so that the cause stays last; a job that finishes logs it."""
    log = tmp_path / "job.log"
    script = (
        f"import sys; sys.path.append({str(REPO / 'workflow' / 'scripts')!r})\n"
        "from checkout import log_to\n"
        f"log_to({str(log)!r})\n"
        "import torch\n"
        "from demoscope.lm import jobclock\n"
        "body = torch.nn.Linear(2, 2)\n"
        "jobclock.meter(body, body=body)\n"
        "body(torch.zeros(1, 2))\n"
        "if sys.argv[1] == 'fail':\n"
        "    raise ValueError('query_mask.queries: 4 asked for')\n"
    )
    failed = subprocess.run([sys.executable, "-c", script, "fail"], capture_output=True, text=True)
    assert failed.returncode == 1
    lines = log.read_text().splitlines()
    assert lines[-1] == "demoscope error: ValueError: query_mask.queries: 4 asked for"
    assert not any(line.startswith("forwarded") for line in lines)
    done = subprocess.run([sys.executable, "-c", script, "pass"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines()[-1] == "forwarded 2 tokens through 6 parameters in 1 forwards"


def test_the_default_profile_prints_a_failed_jobs_log():
    profile = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert profile["show-failed-logs"] is True
