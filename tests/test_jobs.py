"""benchmarks/jobs.py on synthetic benchmark files and logs, and the lines model jobs log
(demoscope/lm/jobclock.py) that it reads."""

from __future__ import annotations

import io
import json
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import jobs  # noqa: E402

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_job(run, rule, wildcards, seconds, log=None, cpu="1.50"):
    bench = run / "results" / "benchmarks" / rule / f"{wildcards}.tsv"
    bench.parent.mkdir(parents=True, exist_ok=True)
    bench.write_text(HEADER + f"{seconds}\t0:00:01\t512.3\t900.1\t500.0\t501.0\t1.0\t2.0\t90.0\t{cpu}\n")
    if log is not None:
        path = run / "results" / "logs" / rule / f"{wildcards}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(log)


@pytest.fixture
def run(tmp_path):
    # Two model jobs of one rule (one logs tokens twice, as a job scoring two tables might),
    # one model job whose benchmark clock is shorter than its logged start-up, and light jobs
    # without a first-forward line (one has no log at all).
    write_job(tmp_path, "dump_activations", "m/sst2/causal", 20.0,
              "loading\nfirst forward after 5.00 s\ndump causal: 100%\nforwarded 1000 tokens through 100 parameters in 3 forwards\n")
    write_job(tmp_path, "dump_activations", "m/arc/causal", 10.0,
              "first forward after 4.00 s\nforwarded 500 tokens through 100 parameters in 1 forwards\n"
              "forwarded 250 tokens through 100 parameters in 1 forwards\n")
    write_job(tmp_path, "evaluate", "m/sst2", 3.0, "\rscore:   0%|          | 0/6 [00:00<?, ?it/s]first forward after 3.50 s\n")
    write_job(tmp_path, "correlate", "m/sst2/causal/mlp_out", 2.0, "rho rows written\n")
    write_job(tmp_path, "report", "report", 5.0)
    return tmp_path


def test_jobs_split_into_startup_model_work_and_light(run):
    table = {row["job"]: row for row in jobs.read_jobs(run)}
    assert set(table) == {"dump_activations/m/sst2/causal", "dump_activations/m/arc/causal", "evaluate/m/sst2",
                          "correlate/m/sst2/causal/mlp_out", "report/report"}
    first = table["dump_activations/m/sst2/causal"]
    assert (first["rule"], first["s"], first["cpu_time"], first["max_rss"]) == ("dump_activations", 20.0, 1.5, 512.3)
    assert first["model"] and first["startup"] == 5.0 and first["tokens"] == 1000 and first["flops"] == 2 * 100 * 1000
    assert table["dump_activations/m/arc/causal"]["tokens"] == 750
    assert table["evaluate/m/sst2"]["startup"] == 3.0  # clipped to the job's wall time
    assert not table["correlate/m/sst2/causal/mlp_out"]["model"] and not table["report/report"]["model"]

    rows = {row["rule"]: row for row in jobs.by_rule(jobs.read_jobs(run))}
    assert [row["rule"] for row in jobs.by_rule(jobs.read_jobs(run))][0] == "dump_activations"  # most seconds first
    dump = rows["dump_activations"]
    assert (dump["jobs"], dump["job_s"], dump["mean_s"], dump["min_s"], dump["max_s"]) == (2, 30.0, 15.0, 10.0, 20.0)
    assert (dump["startup_s"], dump["light_s"], dump["tokens"]) == (9.0, 0.0, 1750)
    assert rows["report"]["light_s"] == 5.0 and rows["report"]["startup_s"] == 0.0

    top = jobs.totals(jobs.read_jobs(run))
    assert (top["jobs"], top["model_jobs"], top["job_s"]) == (5, 3, 40.0)
    assert (top["startup_s"], top["light_s"], top["work_s"]) == (12.0, 7.0, 21.0)
    assert top["overhead_share"] == pytest.approx(19 / 40) and top["startup_share"] == pytest.approx(12 / 40)
    assert top["flops"] == 2 * 100 * 1750


def test_markdown_and_csv_carry_every_rule_and_the_share(run, tmp_path, capsys):
    metadata = run / ".snakemake" / "metadata"
    metadata.mkdir(parents=True)
    for i, (start, end) in enumerate(((100.0, 130.0), (110.0, 175.5))):
        (metadata / f"k{i}").write_text(json.dumps({"starttime": start, "endtime": end}))
    assert jobs.run_wall(run) == pytest.approx(75.5)
    out_md, out_csv = tmp_path / "t.md", tmp_path / "t.csv"
    assert jobs.main(["--run-dir", str(run), "--markdown", str(out_md), "--csv", str(out_csv)]) == 0
    text = out_md.read_text()
    for rule in ("dump_activations", "evaluate", "correlate", "report"):
        assert f"| `{rule}` |" in text
    assert "| **total** | 5 | 40 |" in text and "together **47.5%**" in text and "end, .snakemake/metadata): 76 s" in text
    assert len(out_csv.read_text().splitlines()) == 6


def test_a_run_without_benchmarks_or_a_foreign_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no benchmark files"):
        jobs.read_jobs(tmp_path)
    bad = tmp_path / "results" / "benchmarks" / "x" / "y.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="y.tsv: not a Snakemake benchmark file"):
        jobs.read_jobs(tmp_path)


def test_model_jobs_log_their_first_forward_and_tokens(tiny_llama):
    import torch

    from demoscope.lm import jobclock, models
    from demoscope.lm.models import backbone

    model, tokenizer, device = models.load(tiny_llama, "cpu", "float32")
    stream = io.StringIO()
    counts = jobclock.meter(model, stream=stream, at_exit=False)
    assert stream.getvalue() == ""
    with torch.inference_mode():
        model(input_ids=torch.ones((2, 7), dtype=torch.long))
        backbone(model)(input_ids=torch.ones((3, 5), dtype=torch.long))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and jobs.FIRST.match(lines[0])  # logged once, at the first forward only
    assert 0 < float(jobs.FIRST.match(lines[0]).group(1)) < 3600
    parameters = sum(p.numel() for p in model.parameters())
    assert counts == {"tokens": 2 * 7 + 3 * 5, "forwards": 2, "parameters": parameters}
    line = jobclock.forwarded_line(counts)
    assert jobs.read_log_text(line) == {"first_forward": None, "tokens": 29, "parameters": parameters}


def test_the_run_figure_is_the_runs_flops_over_its_wall_time_against_the_peak(run):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_run", REPO / "benchmarks" / "run.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    figure = bench.run_figure(run, 50.0, peak_gflops=1e-3)
    # 2 x 100 parameters x 1,750 tokens = 350,000 FLOPs in 50 s = 7e-6 GFLOP/s.
    assert figure["flops"] == 350_000 and figure["wall_s"] == 50.0
    assert figure["gflops"] == pytest.approx(7e-6) and figure["share"] == pytest.approx(7e-3)
    assert bench.run_figure(run, None, 1.0) is None  # no metadata, no wall time given
    assert bench.run_figure(run / "nothing", 50.0, 1.0) is None
    line = bench.run_line(figure, {"gflops": 1e-3, "n": 64, "threads": 2}, str(run))
    assert "**0.7%**" in line and "3 model jobs, 1,750 tokens" in line
    peak = bench.matmul_peak(n=64, seconds=0.05)
    assert peak["gflops"] > 0 and peak["threads"] >= 1
