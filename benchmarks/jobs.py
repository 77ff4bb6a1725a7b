"""Job-seconds of a finished run by rule, and the share spent on start-up.

    python benchmarks/jobs.py            # in the folder the run ran in (results/ below it)
    python benchmarks/jobs.py --run-dir PATH --markdown table.md

Reads every job's Snakemake benchmark file (results/benchmarks/<rule>/...tsv: wall seconds,
CPU seconds, peak RSS) and the job's log beside it (results/logs/<rule>/...log). Model jobs
log `first forward after X s` (workflow/demoscope/lm/jobclock.py): those X seconds
(interpreter, imports, model load, tokenising) are start-up, the rest is model work. Jobs
without that line never run a model (features, correlations, selection, report, figures,
prompts): all their seconds count as light. The table ends with the run's totals: job-seconds,
start-up, light, and their share. Model jobs also log `forwarded N tokens through P
parameters`; the table sums the tokens and the model FLOPs (2 x P x N).

Run it on a fresh run: benchmark files of jobs that an earlier run made and this one did not
rerun are read as well.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

# Not anchored to a line start: a progress bar that is still open (tqdm writes carriage
# returns, no newline) often precedes the first-forward line on the same line.
FIRST = re.compile(r"first forward after ([0-9.]+) s")
FORWARDED = re.compile(r"forwarded (\d+) tokens through (\d+) parameters")


def read_benchmark(path: Path) -> dict:
    """The first record of one Snakemake benchmark file (wall `s`, `cpu_time`, `max_rss` MB)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows or "s" not in rows[0]:
        raise ValueError(f"{path}: not a Snakemake benchmark file (no `s` column)")

    def number(key):
        value = rows[0].get(key, "NA")
        return float(value) if value not in ("NA", "-", "", None) else float("nan")

    return {"s": number("s"), "cpu_time": number("cpu_time"), "max_rss": number("max_rss")}


def read_log(path: Path) -> dict:
    return read_log_text(path.read_text(errors="replace") if path.exists() else "")


def read_log_text(text: str) -> dict:
    """What a job's log says about its time: seconds before its first forward (None when it
    never ran a model), and tokens forwarded and parameters (0 when not logged)."""
    first = FIRST.search(text)
    tokens, parameters = 0, 0
    for match in FORWARDED.finditer(text):
        tokens += int(match.group(1))
        parameters = int(match.group(2))
    return {"first_forward": float(first.group(1)) if first else None, "tokens": tokens, "parameters": parameters}


def read_jobs(run_dir: str | Path) -> list[dict]:
    """One row per benchmark file under run_dir/results/benchmarks: rule, job (its wildcards
    as a path), wall and CPU seconds, start-up seconds (model jobs), tokens, FLOPs."""
    root = Path(run_dir) / "results" / "benchmarks"
    logs = Path(run_dir) / "results" / "logs"
    jobs = []
    for path in sorted(root.rglob("*.tsv")):
        relative = path.relative_to(root)
        bench = read_benchmark(path)
        log = read_log(logs / relative.with_suffix(".log"))
        model = log["first_forward"] is not None
        jobs.append({
            "rule": relative.parts[0],
            "job": str(relative.with_suffix("")),
            "s": bench["s"],
            "cpu_time": bench["cpu_time"],
            "max_rss": bench["max_rss"],
            "model": model,
            # A job cannot spend more than its wall time before its first forward; the
            # benchmark clock starts a little before the process, so clip.
            "startup": min(log["first_forward"], bench["s"]) if model else 0.0,
            "tokens": log["tokens"],
            "flops": 2.0 * log["parameters"] * log["tokens"],
        })
    if not jobs:
        raise FileNotFoundError(f"no benchmark files under {root}: run the workflow there first")
    return jobs


def by_rule(jobs: list[dict]) -> list[dict]:
    """Per rule, most job-seconds first: jobs, job-seconds, mean/min/max, start-up, light."""
    rules: dict[str, list[dict]] = {}
    for job in jobs:
        rules.setdefault(job["rule"], []).append(job)
    rows = []
    for rule, part in rules.items():
        seconds = [j["s"] for j in part]
        rows.append({
            "rule": rule,
            "jobs": len(part),
            "job_s": sum(seconds),
            "mean_s": sum(seconds) / len(part),
            "min_s": min(seconds),
            "max_s": max(seconds),
            "startup_s": sum(j["startup"] for j in part),
            "light_s": sum(j["s"] for j in part if not j["model"]),
            "tokens": sum(j["tokens"] for j in part),
            "flops": sum(j["flops"] for j in part),
        })
    return sorted(rows, key=lambda row: -row["job_s"])


def totals(jobs: list[dict]) -> dict:
    """The run's job-seconds and how much of them is start-up (model jobs before their first
    forward) or light (jobs that run no model); `overhead_share` is the issue's measure."""
    total = sum(j["s"] for j in jobs)
    startup = sum(j["startup"] for j in jobs)
    light = sum(j["s"] for j in jobs if not j["model"])
    return {
        "jobs": len(jobs),
        "model_jobs": sum(j["model"] for j in jobs),
        "job_s": total,
        "startup_s": startup,
        "light_s": light,
        "work_s": total - startup - light,
        "startup_share": startup / total if total else float("nan"),
        "light_share": light / total if total else float("nan"),
        "overhead_share": (startup + light) / total if total else float("nan"),
        "tokens": sum(j["tokens"] for j in jobs),
        "flops": sum(j["flops"] for j in jobs),
    }


def run_wall(run_dir: str | Path) -> float | None:
    """Seconds from the first job's start to the last job's end, from Snakemake's metadata
    records (.snakemake/metadata); None when there are none."""
    starts, ends = [], []
    for path in (Path(run_dir) / ".snakemake" / "metadata").rglob("*"):
        if not path.is_file():
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("starttime") and record.get("endtime"):
            starts.append(float(record["starttime"]))
            ends.append(float(record["endtime"]))
    return max(ends) - min(starts) if starts else None


def markdown(jobs: list[dict]) -> str:
    rows = by_rule(jobs)
    top = totals(jobs)
    lines = [
        "| rule | jobs | job-s | mean s | min s | max s | before first forward s | light s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['rule']}` | {r['jobs']} | {r['job_s']:.0f} | {r['mean_s']:.1f} | {r['min_s']:.1f} | "
            f"{r['max_s']:.1f} | {r['startup_s']:.0f} | {r['light_s']:.0f} |"
        )
    lines.append(
        f"| **total** | {top['jobs']} | {top['job_s']:.0f} | | | | {top['startup_s']:.0f} | {top['light_s']:.0f} |"
    )
    lines += [
        "",
        f"Model jobs: {top['model_jobs']} of {top['jobs']}. Job-seconds before the first forward: "
        f"{top['startup_s']:.0f} s ({100 * top['startup_share']:.1f}%); in light jobs: {top['light_s']:.0f} s "
        f"({100 * top['light_share']:.1f}%); together **{100 * top['overhead_share']:.1f}%** of "
        f"{top['job_s']:.0f} job-seconds. Tokens forwarded: {top['tokens']:,}; model FLOPs "
        f"(2 x parameters x tokens): {top['flops']:.3g}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=".", help="the folder the run ran in (holding results/)")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--csv", help="also write one row per job to this CSV file")
    args = parser.parse_args(argv)
    jobs = read_jobs(args.run_dir)
    table = markdown(jobs)
    wall = run_wall(args.run_dir)
    if wall is not None:
        table += f"\nRun wall time (first job start to last job end, .snakemake/metadata): {wall:.0f} s.\n"
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(jobs[0]))
            writer.writeheader()
            writer.writerows(jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
