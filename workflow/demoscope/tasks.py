"""A task as declared in config: where its records come from and how they read.

With `data_dir` set, every task reads `<data_dir>/<local.dir>/<split>.jsonl`
and nothing touches the network; otherwise it reads its `hub` source.
"""

from __future__ import annotations

from pathlib import Path

from .records import Record, Skipped, load_hub_split, load_local_split

SPLITS = ("train", "dev", "test")


def local_dir(task: dict, data_dir: str | Path) -> Path:
    return Path(data_dir) / task["local"]["dir"]


def local_files(task: dict, data_dir: str | Path) -> list[str]:
    """The files a task reads offline; the workflow lists them as inputs so edits trigger reruns."""
    folder = local_dir(task, data_dir)
    return [str(folder / f"{split}.jsonl") for split in SPLITS if (folder / f"{split}.jsonl").exists()]


def load_split(task: dict, split: str, data_dir: str | Path | None, skipped: Skipped | None = None) -> list[Record]:
    """One split's records; bad rows raise, or are recorded in `skipped` and left out when it is given."""
    if data_dir:
        local = task["local"]
        return load_local_split(local_dir(task, data_dir), split, local["format"], local, skipped)
    hub = task["hub"]
    return load_hub_split(hub, split, hub["format"], skipped)
