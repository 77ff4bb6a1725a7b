"""Hashes of the code a rule's script imports, so a rule reruns when that code changes.

Snakemake tracks a `script:` file's own content but not what it imports; each rule therefore
carries `params.code`, the hash of every local module its script imports, found by walking the
imports of the script and of each module it reaches (an AST walk, imports inside functions
included), never by a hand-kept list that can drift from the code.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SCRIPTS_DIR = PACKAGE_DIR.parent / "scripts"
PACKAGE = PACKAGE_DIR.name


def code_hash(*modules: str, package_dir: str | Path = PACKAGE_DIR) -> str:
    """The hash of named package modules: the old hand-written form, kept so that rules not
    yet converted still run (a test lists them; convert each to `script_code`)."""
    digest = hashlib.sha256()
    for module in sorted(set(modules)):
        path = Path(package_dir) / f"{module}.py"
        digest.update(module.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _imports(source: bytes, filename: str, package: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Every import in one file as (absolute module, imported names): `import a.b` gives
    ("a.b", ()), `from a import b, c` gives ("a", ("b", "c")); relative imports are resolved
    against `package`, the package the file belongs to. Keyed on the source, so an edited
    file is parsed again."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                if node.level - 1 > len(parts):
                    raise ImportError(f"{filename}:{node.lineno}: relative import beyond the top package")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                module = ".".join(part for part in (base, node.module) if part)
            else:
                module = node.module
            found.append((module, tuple(alias.name for alias in node.names)))
    return tuple(found)


def _file(name: str, roots: dict[str, Path]) -> Path | None:
    """The file of a local module (`demoscope.x` in the package, or a helper module beside the
    script such as `checkout`), None for anything else (the standard library, third parties)."""
    top, *rest = name.split(".")
    if top not in roots:
        return None
    base = roots[top].joinpath(*rest)
    for path in (base / "__init__.py", base.with_suffix(".py") if rest else roots[top]):
        if path.is_file():
            return path
    return None


def _roots(script: Path, package_dir: Path) -> dict[str, Path]:
    roots = {path.stem: path for path in script.parent.glob("*.py") if path != script}
    roots[package_dir.name] = package_dir
    return roots


def closure(script: str | Path, package_dir: str | Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every local module `script` imports, directly or through other local modules, as
    module name -> file: package modules (`demoscope.x`, and `demoscope` itself, whose
    `__init__` runs on any import of it) and helper modules beside the script (`checkout`)."""
    script, package_dir = Path(script).resolve(), Path(package_dir).resolve()
    roots = _roots(script, package_dir)
    found: dict[str, Path] = {}
    todo = [(script, "")]
    while todo:
        path, package = todo.pop()
        for module, names in _imports(path.read_bytes(), str(path), package):
            # `import a.b.c` runs a, a.b and a.b.c; `from a.b import c` also runs a.b.c when
            # c is a module rather than a name defined in a.b.
            parts = module.split(".")
            candidates = [".".join(parts[: i + 1]) for i in range(len(parts))]
            candidates += [f"{module}.{name}" for name in names if name != "*"]
            for name in candidates:
                if name in found:
                    continue
                file = _file(name, roots)
                if file is None:
                    continue
                found[name] = file
                todo.append((file, name if file.name == "__init__.py" else name.rpartition(".")[0]))
    return found


def script_hash(script: str | Path, package_dir: str | Path = PACKAGE_DIR) -> str:
    """The hash of every local module in `script`'s import closure (names and contents)."""
    digest = hashlib.sha256()
    for name, path in sorted(closure(script, package_dir).items()):
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def script_code(name: str, scripts_dir: str | Path = SCRIPTS_DIR) -> str:
    """`params.code` of the rule whose `script:` is `scripts/<name>.py` (a test checks that
    the name matches the rule's script)."""
    scripts_dir = Path(scripts_dir)
    return script_hash(scripts_dir / f"{name}.py", scripts_dir.parent / PACKAGE)
