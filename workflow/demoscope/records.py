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


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each line, naming the file on bad JSON."""
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, obj


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


def parse_records(rows: Iterable[tuple[str, dict]], fmt: str, spec: dict | None = None) -> list[Record]:
    """Parse (location, object) pairs with the parser for `fmt`."""
    if fmt not in PARSERS:
        raise ValueError(f"unknown record format {fmt!r}; allowed: {sorted(PARSERS)}")
    parse = PARSERS[fmt]
    return [parse(obj, where, i, spec or {}) for i, (where, obj) in enumerate(rows)]


def load_local_split(directory: Path, split: str, fmt: str, spec: dict | None = None) -> list[Record]:
    path = Path(directory) / f"{split}.jsonl"
    if not path.exists():
        raise DataError(f"{path}: no such file (split '{split}' of a local task folder)")
    return parse_records(((f"{path}:{n}", obj) for n, obj in read_jsonl(path)), fmt, spec)


def load_hub_split(hub: dict, split: str, fmt: str) -> list[Record]:
    """Load one split from a Hugging Face dataset id (or a local dataset folder)."""
    import datasets

    name = hub["splits"].get(split)
    if name is None:
        raise DataError(f"hub source {hub['id']!r} declares no '{split}' split")
    data = datasets.load_dataset(hub["id"], hub.get("config"), split=name)
    return parse_records(((f"{hub['id']}[{name}]#{i}", dict(row)) for i, row in enumerate(data)), fmt, hub)
