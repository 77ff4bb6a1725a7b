"""A task as declared in config: where its records come from and how they read.

With `data_dir` set, every task reads one file per split from `<data_dir>/<local.dir>/`
(`<split>.jsonl`, `.json`, `.csv`, `.tsv`, `.parquet`, or `.txt` split by `local.pattern`,
or the files `local.files` names) and nothing touches the network; otherwise it reads
its `hub` source. A task may lack a dev split (GSM8K has none): its quality queries then
come from train.
"""

from __future__ import annotations

from pathlib import Path

from demoscope.data.records import DataError, Record, Skipped, load_hub_split, load_local_split, peek_fields, split_path, template_fields
from demoscope.data.templates import DEFAULT_TEMPLATE

SPLITS = ("train", "dev", "test")
MAX_NEW_TOKENS = 128


def local_dir(task: dict, data_dir: str | Path) -> Path:
    return Path(data_dir) / task["local"]["dir"]


def local_files(task: dict, data_dir: str | Path) -> list[str]:
    """The files a task reads offline; the workflow lists them as inputs so edits trigger reruns."""
    folder = local_dir(task, data_dir)
    paths = [split_path(folder, split, task["local"]) for split in SPLITS]
    return [str(path) for path in paths if path is not None and path.exists()]


def source_key(task_name: str | None, source: str) -> str:
    return f"tasks.{task_name}.{source}" if task_name else source


def load_split(
    task: dict, split: str, data_dir: str | Path | None, skipped: Skipped | None = None, name: str | None = None
) -> list[Record]:
    """One split's records; bad rows raise, or are recorded in `skipped` and left out when it is given.
    `name` is the task's name in config, for messages that name its keys."""
    if data_dir:
        local = task["local"]
        return load_local_split(
            local_dir(task, data_dir), split, local["format"], local, skipped, source_key(name, "local")
        )
    hub = task["hub"]
    return load_hub_split(hub, split, hub["format"], skipped, source_key(name, "hub"))


def has_split(task: dict, split: str, data_dir: str | Path | None) -> bool:
    """Whether the task's source declares `split`: a local file, or a hub `splits` entry."""
    if data_dir:
        path = split_path(local_dir(task, data_dir), split, task["local"])
        return path is not None and path.exists()
    return split in task["hub"]["splits"]


def source_errors(name: str, task: dict, data_dir: str | Path) -> list[str]:
    """A local source against its files, before any job: train and test exist, each split is
    one file that holds a record, and a `fields` source's templates name fields its records
    have (read from the first record: a header, a schema, a line)."""
    local = task.get("local") or {}
    key = source_key(name, "local")
    folder = local_dir(task, data_dir)
    errors = []
    for split in SPLITS:
        try:
            path = split_path(folder, split, local)
        except DataError as err:
            errors.append(f"{key}: {err}")
            continue
        if path is None or not path.exists():
            if split != "dev" or (local.get("files") or {}).get("dev"):
                shown = path or folder / f"{split}.<{'|'.join(('jsonl', 'json', 'csv', 'tsv', 'parquet', 'txt'))}>"
                errors.append(f"{key}: the {split} split's file {shown} does not exist")
            continue
        try:
            fields = peek_fields(path, local, key)
        except (DataError, OSError, ValueError) as err:
            errors.append(f"{key}: {path}: cannot be read ({err})")
            continue
        if fields is None:
            errors.append(f"{key}: {path} holds no records (the {split} split is empty)")
        elif local.get("format") == "fields":
            errors.extend(_field_errors(key, local, path, fields))
    return errors


def _field_errors(key: str, local: dict, path: Path, fields: list[str]) -> list[str]:
    errors = []
    have = ", ".join(fields) or "none"
    try:
        asked = template_fields(local.get("input", ""))
    except ValueError:
        asked = set()  # config.py names a template that does not parse
    for field in sorted(asked - set(fields)):
        errors.append(f"{key}.input: placeholder {{{field}}} is not a field of {path} (its fields: {have})")
    label = local.get("label", "label")
    if label not in fields:
        errors.append(f"{key}.label: {label!r} is not a field of {path} (its fields: {have})")
    return errors


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
