"""Imported first by every script: the package comes from this checkout, the same files whose
hashes the rules carry, and the job's stderr goes to the rule's log."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def log_to(path: str) -> None:
    sys.stderr = open(path, "w", buffering=1)
