"""A task as declared in config: where its records come from and how they read.

With `data_dir` set, every task reads `<data_dir>/<local.dir>/<split>.jsonl`
and nothing touches the network; otherwise it reads its `hub` source. A task may
lack a dev split (GSM8K has none): its quality queries then come from train.
"""

from __future__ import annotations

from pathlib import Path

from .records import Record, Skipped, load_hub_split, load_local_split
from .templates import DEFAULT_TEMPLATE

SPLITS = ("train", "dev", "test")
MAX_NEW_TOKENS = 128


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


def has_split(task: dict, split: str, data_dir: str | Path | None) -> bool:
    """Whether the task's source declares `split`: a local file, or a hub `splits` entry."""
    if data_dir:
        return (local_dir(task, data_dir) / f"{split}.jsonl").exists()
    return split in task["hub"]["splits"]


def generation_settings(task: dict) -> dict:
    """A generation task's decoding settings, defaults filled: at most `max_new_tokens` tokens,
    at least `min_new_tokens` before an end-of-sequence token, cut before the first `stop`
    string, which defaults to the template's separator (the text that would start the next
    example)."""
    block = task.get("generation") or {}
    separator = (task.get("template") or {}).get("separator", DEFAULT_TEMPLATE["separator"])
    return {
        "max_new_tokens": block.get("max_new_tokens", MAX_NEW_TOKENS),
        "min_new_tokens": block.get("min_new_tokens", 0),
        "stop": list(block.get("stop", [separator])),
    }
