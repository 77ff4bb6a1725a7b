"""Tables written atomically: under a temporary name, then renamed into place."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl


def _atomic(path: str | Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    write(tmp)
    os.replace(tmp, path)


def write_parquet(frame: pl.DataFrame, path: str | Path) -> None:
    _atomic(path, lambda tmp: frame.write_parquet(tmp, statistics=False))


def write_csv(frame: pl.DataFrame, path: str | Path) -> None:
    _atomic(path, lambda tmp: frame.write_csv(tmp))
