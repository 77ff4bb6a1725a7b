"""Headless Chromium for looking at a Snakemake report the way a reader does."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("report_probe.js")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium() -> str:
    """The Chromium binary. Under CI (`CI` set) a missing one is installed with apt-get and the
    test fails if that does not work; elsewhere a missing one skips the test."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if not os.environ.get("CI"):
        pytest.skip("chromium is not installed (apt-get install chromium; under CI=1 the test installs it)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, env=env, capture_output=True)
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium, but no chromium binary is on PATH"
    return found


def _with_script(report: Path, script: str, out: Path) -> Path:
    page = report.read_text()
    end = page.rindex("</body>")
    out.write_text(page[:end] + f"<script>{script}</script>" + page[end:])
    return out


def _run(binary: str, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    profile = workdir / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    profile.mkdir(parents=True)
    return subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=60000", *args],
        capture_output=True, text=True, timeout=300, check=True,
    )


def probe_report(binary: str, report: Path, workdir: Path) -> dict:
    """Open every figure of an embedded HTML report in the browser; what each one showed."""
    page = _with_script(report, PROBE.read_text(), workdir / "probe.html")
    dom = _run(binary, workdir, "--dump-dom", page.as_uri()).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, f"the report never finished the probe; page starts: {dom[:500]}"
    return json.loads(html.unescape(found.group(1)))


def screenshot(binary: str, report: Path, result: str | None, png: Path, workdir: Path) -> Path:
    """A screenshot of the report as a reader sees it after clicking one result (its path), or
    of its landing page (None)."""
    page = report
    if result is not None:
        view = {"content": "img", "navbarMode": "resultinfo", "resultPath": result}
        script = (
            "(function show() { if (typeof app === 'undefined' || !document.querySelector('#app').children.length)"
            f" {{ return setTimeout(show, 25); }} app.setView({{...{json.dumps(view)}, contentPath: results"
            f"[{json.dumps(result)}].data_uri}}); }})();"
        )
        page = _with_script(report, script, workdir / "shot.html")
    _run(binary, workdir, "--window-size=1600,1000", f"--screenshot={png}", page.as_uri())
    return png
