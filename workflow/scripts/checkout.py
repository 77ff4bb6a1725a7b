"""Imported first by every script: the package comes from this checkout, the same files whose
hashes the rules carry, and the job's stderr goes to the rule's log."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# What starts the one-line summary of a failed job, at the end of its log and on the console.
ERROR_PREFIX = "demoscope error: "


def cause(error: BaseException) -> str:
    """The exception as one line: its type and its message, lines joined."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _report(kind, error, traceback) -> None:
    """The traceback goes to the log as before, then the cause on one line: last in the log,
    where `show-failed-logs` ends, and on the console (the job's own stderr), where Snakemake
    prints it above its `CalledProcessError` block."""
    sys.__excepthook__(kind, error, traceback)
    line = ERROR_PREFIX + cause(error)
    for stream in {id(s): s for s in (sys.stderr, sys.__stderr__) if s is not None}.values():
        try:
            print(line, file=stream, flush=True)
        except (OSError, ValueError):  # a closed stream must not hide the original error
            pass


def log_to(path: str) -> None:
    sys.stderr = open(path, "w", buffering=1)
    sys.excepthook = _report
