"""Tables written atomically, with a completion marker a reader checks.

A table is written under a temporary name and renamed into place only when the
write has finished. Its footer carries `demoscope.rows`, the row count the
writer meant to write; `read_table` refuses a file whose rows disagree.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

ROWS_KEY = "demoscope.rows"


class TableError(RuntimeError):
    """A table that is incomplete or was not written by demoscope."""


def _atomic(path: str | Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    write(tmp)
    os.replace(tmp, path)


def write_parquet(frame: pl.DataFrame, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """`metadata`: extra footer entries (strings), e.g. a setting the table was computed under."""
    footer = {**(metadata or {}), ROWS_KEY: str(frame.height)}
    _atomic(path, lambda tmp: frame.write_parquet(tmp, statistics=False, metadata=footer))


def write_csv(frame: pl.DataFrame, path: str | Path) -> None:
    _atomic(path, lambda tmp: frame.write_csv(tmp))


def read_table(path: str | Path) -> pl.DataFrame:
    """Read a demoscope Parquet table, checking its completion marker."""
    path = Path(path)
    try:
        marker = pl.read_parquet_metadata(path).get(ROWS_KEY)
        frame = pl.read_parquet(path)
    except FileNotFoundError:
        raise TableError(f"{path}: no such table") from None
    except Exception as err:  # a truncated or foreign file: polars raises several types
        raise TableError(f"{path}: unreadable Parquet table ({type(err).__name__}: {err})") from err
    if marker is None:
        raise TableError(f"{path}: has no {ROWS_KEY} completion marker; it was not written by demoscope")
    if int(marker) != frame.height:
        raise TableError(f"{path}: marker says {marker} rows but the table has {frame.height}")
    return frame
