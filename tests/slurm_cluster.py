"""A real one-node SLURM cluster on localhost, for tests: munged, slurmctld and slurmd.

Debian's `slurm-wlm` and `munge` packages are installed with apt-get when missing (the
test machines run as root). Every file the daemons use lives under one folder, the daemons
listen on free ports and are found through SLURM_CONF, so nothing touches /etc or a
cluster that may already run on the machine. The node has the machine's cores and memory
(as `slurmd -C` reports them) and two stand-in GPUs (GRES backed by /dev/null), so
`--gpus` requests are scheduled and accounted for exactly as on a GPU node.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMON_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scontrol", "scancel")
PACKAGES = ("slurm-wlm", "munge")
PARTITION = "debug"
N_GPUS = 2


class SlurmUnavailable(RuntimeError):
    """SLURM could not be installed or started here; the message says why."""


def which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path=os.pathsep.join(DAEMON_DIRS))


def install() -> None:
    """Install slurm-wlm and munge with apt-get unless every tool is already there."""
    missing = [tool for tool in TOOLS if which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable(f"{', '.join(missing)} not installed, and installing {PACKAGES} needs root")
    if which("apt-get") is None:
        raise SlurmUnavailable(f"{', '.join(missing)} not installed, and there is no apt-get to install {PACKAGES}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=600"]  # another apt-get may hold the lock for a while
    for cmd in (
        ["apt-get", *lock, "update"],
        ["apt-get", *lock, "install", "-y", "--no-install-recommends", *PACKAGES],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SlurmUnavailable(f"`{' '.join(cmd)}` failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    missing = [tool for tool in TOOLS if which(tool) is None]
    if missing:
        raise SlurmUnavailable(f"installed {PACKAGES}, but {', '.join(missing)} still cannot be found")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_hardware() -> dict[str, str]:
    """The node line `slurmd -C` prints for this machine: NodeName, CPUs, ..., RealMemory."""
    done = subprocess.run([which("slurmd"), "-C"], capture_output=True, text=True, check=True)
    line = done.stdout.splitlines()[0]
    return dict(item.split("=", 1) for item in line.split())


class Cluster:
    """Start with `start()`, always end with `stop()` (it is safe to call after a failed start)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.procs: dict[str, subprocess.Popen] = {}
        self.hardware = node_hardware()
        self.node = self.hardware["NodeName"]
        self.conf = self.root / "slurm.conf"
        self.bin = self.root / "bin"
        path = os.pathsep.join([str(self.bin), os.environ.get("PATH", "")])
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    @property
    def mem_mb(self) -> int:
        return int(self.hardware["RealMemory"])

    @property
    def cpus(self) -> int:
        return int(self.hardware["CPUs"])

    def write_config(self) -> None:
        root = self.root
        for sub in ("munge", "state", "spool", "log"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        # munged wants its key private and its socket folder reachable but not writable by others.
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        (root / "munge").chmod(0o711)
        hw = {k: v for k, v in self.hardware.items() if k not in ("NodeName", "UpTime")}
        node = " ".join(f"{k}={v}" for k, v in hw.items())
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=demoscope-test",
                    f"SlurmctldHost={self.node}(127.0.0.1)",
                    f"SlurmctldPort={free_port()}",
                    f"SlurmdPort={free_port()}",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={root / 'munge' / 'munge.socket'}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    f"StateSaveLocation={root / 'state'}",
                    f"SlurmdSpoolDir={root / 'spool'}",
                    f"SlurmctldPidFile={root / 'slurmctld.pid'}",
                    f"SlurmdPidFile={root / 'slurmd.pid'}",
                    f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
                    # No cgroups, no accounting database: the smallest cluster that schedules
                    # CPUs, memory and GPUs. Finished jobs stay visible to squeue for an hour.
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "MpiDefault=none",
                    "SchedulerType=sched/backfill",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "ReturnToService=2",
                    "MinJobAge=3600",
                    "GresTypes=gpu",
                    f"NodeName={self.node} NodeAddr=127.0.0.1 {node} Gres=gpu:{N_GPUS} State=UNKNOWN",
                    f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        # Inside a job, the slurm-jobstep plugin drops every SLURM_* variable (SLURM_CONF
        # too) before its nested srun, which would then look for /etc/slurm/slurm.conf only;
        # an srun first in PATH hands it this cluster's config.
        self.bin.mkdir(exist_ok=True)
        srun = self.bin / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {which("srun")} "$@"\n')
        srun.chmod(0o755)
        # Stand-in GPUs: GRES needs a device file per GPU; the jobs never open it.
        devices = ["/dev/null", "/dev/zero"][:N_GPUS]
        (root / "gres.conf").write_text("".join(f"NodeName={self.node} Name=gpu File={d}\n" for d in devices))

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def start(self, timeout: float = 60) -> None:
        self.write_config()
        munge = self.root / "munge"
        self._spawn(
            "munged",
            [which("munged"), "--foreground", "--force", f"--socket={munge / 'munge.socket'}",
             f"--key-file={munge / 'munge.key'}", f"--pid-file={munge / 'munged.pid'}",
             f"--seed-file={munge / 'munged.seed'}", f"--log-file={self.root / 'log' / 'munged.log'}"],
        )
        self._wait(lambda: (munge / "munge.socket").exists(), timeout, "munged to open its socket")
        self._spawn("slurmctld", [which("slurmctld"), "-D", "-f", str(self.conf)])
        self._wait(lambda: self.run("scontrol", "ping", check=False).returncode == 0, timeout, "slurmctld to answer")
        self._spawn("slurmd", [which("slurmd"), "-D", "-f", str(self.conf)])
        self._wait(lambda: self.node_state() == "idle", timeout, "the node to become idle")

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited ({proc.returncode}) while waiting for {what}:\n{self.logs()}")
            if ready():
                return
            time.sleep(0.5)
        raise SlurmUnavailable(f"timed out after {timeout}s waiting for {what}:\n{self.logs()}")

    def node_state(self) -> str:
        done = self.run("sinfo", "--noheader", "--format=%t", check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([which(tool), *args], capture_output=True, text=True, env=self.env, check=check, timeout=60)

    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller knows, finished ones included, as scontrol's key=value fields."""
        done = self.run("scontrol", "--oneliner", "show", "job")
        return [
            dict(re.findall(r"(\w+(?:/\w+)?)=(\S*)", line))
            for line in done.stdout.splitlines()
            if line.startswith("JobId=")
        ]

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace")
            parts.append(f"--- {path.name} ---\n{text[-3000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel what is left, then end the daemons this object started (by their pids)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            left = self.run("squeue", "--noheader", "--format=%i", check=False).stdout.split()
            if left:
                self.run("scancel", *left, check=False)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
