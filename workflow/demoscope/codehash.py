"""Hashes of package modules, so a rule reruns when the code it calls changes.

Snakemake tracks a `script:` file's own content but not what it imports; each
rule therefore carries `params.code`, the hash of the package modules it uses.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def code_hash(*modules: str, package_dir: str | Path = PACKAGE_DIR) -> str:
    digest = hashlib.sha256()
    for module in sorted(set(modules)):
        path = Path(package_dir) / f"{module}.py"
        digest.update(module.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
