"""Read task records in their original formats into one normalised shape.

Every reader yields `Record`s; nothing downstream knows where a record came
from. `label` is what sampling balances on: the label word for
classification, the gold option's position for multiple choice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator


class DataError(ValueError):
    """A record that cannot be read; the message names its file and line."""


@dataclass(frozen=True)
class Record:
    id: str
    input: str
    answer: str
    options: tuple[str, ...] = field(default_factory=tuple)
    label: str = ""


def _require(obj: dict, key: str, where: str) -> Any:
    value = obj.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where}: missing or empty field '{key}'")
    return value


def parse_dataicl(obj: dict, where: str, index: int, spec: dict) -> Record:
    """DataICL/MetaICL: `input` already carries the template; `output` is the label word."""
    text = _require(obj, "input", where)
    answer = _require(obj, "output", where)
    options = tuple(_require(obj, "options", where))
    if answer not in options:
        raise DataError(f"{where}: label {answer!r} is not among the options {list(options)}")
    return Record(id=str(obj.get("id", index)), input=text, answer=answer, options=options, label=answer)


def parse_ai2_mc(obj: dict, where: str, index: int, spec: dict) -> Record:
    """AI2 ARC / OpenBookQA, as released (nested `question`) or as on the hub (flat)."""
    question = _require(obj, "question" if "question" in obj else "question_stem", where)
    if isinstance(question, dict):
        stem = _require(question, "stem", where)
        choices = _require(question, "choices", where)
        labels = [str(c["label"]) for c in choices]
        texts = [c["text"] for c in choices]
    else:
        stem = question
        choices = _require(obj, "choices", where)
        labels = [str(x) for x in choices["label"]]
        texts = list(choices["text"])
    key = str(_require(obj, "answerKey", where))
    if key not in labels:
        raise DataError(f"{where}: answerKey {key!r} is not among the choice labels {labels}")
    if len(texts) < 2 or any(not str(t).strip() for t in texts):
        raise DataError(f"{where}: needs at least two non-empty choices")
    gold = labels.index(key)
    return Record(
        id=str(obj.get("id", index)), input=stem, answer=texts[gold], options=tuple(texts), label=str(gold)
    )


def parse_gsm8k(obj: dict, where: str, index: int, spec: dict) -> Record:
    """GSM8K: the gold number is the text after '####' on the answer's last line."""
    question = _require(obj, "question", where)
    answer = _require(obj, "answer", where)
    if "####" not in answer:
        raise DataError(f"{where}: answer has no '####' final-answer line")
    return Record(id=str(obj.get("id", index)), input=question, answer=answer, options=(), label="")


def parse_fields(obj: dict, where: str, index: int, spec: dict) -> Record:
    """Any text-classification table: `input` template over the record's fields,
    `label` field holding an index into `label_words` or the word itself."""
    try:
        text = spec["input"].format(**obj)
    except KeyError as err:
        raise DataError(f"{where}: field {err} used by the input template is missing") from None
    words = list(spec["label_words"])
    raw = _require(obj, spec.get("label", "label"), where)
    answer = words[raw] if isinstance(raw, int) and 0 <= raw < len(words) else str(raw)
    if answer not in words:
        raise DataError(f"{where}: label {raw!r} is not among the label words {words}")
    return Record(id=str(obj.get("id", index)), input=text, answer=answer, options=tuple(words), label=answer)


PARSERS = {
    "dataicl": parse_dataicl,
    "ai2_mc": parse_ai2_mc,
    "gsm8k": parse_gsm8k,
    "fields": parse_fields,
}


@dataclass
class Skipped:
    """Rows left out under `bad_records: skip`, each with where it was and why."""

    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, error: DataError) -> None:
        where, _, reason = str(error).partition(": ")
        self.rows.append((where, reason))


def parse_records(
    rows: Iterable[tuple[str, dict | DataError]], fmt: str, spec: dict | None = None, skipped: Skipped | None = None
) -> list[Record]:
    """Parse (location, object) pairs with the parser for `fmt`.

    A bad row raises DataError naming its location, unless `skipped` is given:
    then it is recorded there and left out.
    """
    if fmt not in PARSERS:
        raise ValueError(f"unknown record format {fmt!r}; allowed: {sorted(PARSERS)}")
    parse = PARSERS[fmt]
    records = []
    for i, (where, obj) in enumerate(rows):
        try:
            if isinstance(obj, DataError):
                raise obj
            records.append(parse(obj, where, i, spec or {}))
        except DataError as err:
            if skipped is None:
                raise
            skipped.add(err)
    return records


def jsonl_rows(path: Path) -> Iterator[tuple[str, dict | DataError]]:
    """(file:line, object) per line; a bad line comes as its DataError, so skipping can go on past it."""
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                yield where, DataError(f"{where}: not valid JSON ({err.msg})")
                continue
            yield where, obj if isinstance(obj, dict) else DataError(f"{where}: expected a JSON object")


def load_local_split(
    directory: Path, split: str, fmt: str, spec: dict | None = None, skipped: Skipped | None = None
) -> list[Record]:
    path = Path(directory) / f"{split}.jsonl"
    if not path.exists():
        raise DataError(f"{path}: no such file (split '{split}' of a local task folder)")
    return parse_records(jsonl_rows(path), fmt, spec, skipped)


def load_hub_split(hub: dict, split: str, fmt: str, skipped: Skipped | None = None) -> list[Record]:
    """Load one split from a Hugging Face dataset id (or a local dataset folder)."""
    import datasets

    name = hub["splits"].get(split)
    if name is None:
        raise DataError(f"hub source {hub['id']!r} declares no '{split}' split")
    data = datasets.load_dataset(hub["id"], hub.get("config"), split=name)
    rows = ((f"{hub['id']}[{name}]#{i}", dict(row)) for i, row in enumerate(data))
    return parse_records(rows, fmt, hub, skipped)
