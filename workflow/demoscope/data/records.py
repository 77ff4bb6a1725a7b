"""Read task records in their original formats into one normalised shape.

Every reader yields `Record`s; nothing downstream knows where a record came
from. A local split is one file, read by its extension as `datasets` reads local
files (jsonl, json, csv, tsv, parquet), or as text lines split into fields by a
regular expression with named groups (`pattern`). `label` is what sampling balances on: the label word for
classification, the gold option's position for multiple choice.
"""

from __future__ import annotations

import csv
import json
import re
import string
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


def parse_dataicl(obj: dict, where: str, index: int, spec: dict, key: str = "local") -> Record:
    """DataICL/MetaICL: `input` already carries the template; `output` is the label word."""
    text = _require(obj, "input", where)
    answer = _require(obj, "output", where)
    options = tuple(_require(obj, "options", where))
    if answer not in options:
        raise DataError(f"{where}: label {answer!r} is not among the options {list(options)}")
    return Record(id=str(obj.get("id", index)), input=text, answer=answer, options=options, label=answer)


def parse_ai2_mc(obj: dict, where: str, index: int, spec: dict, key: str = "local") -> Record:
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


def parse_gsm8k(obj: dict, where: str, index: int, spec: dict, key: str = "local") -> Record:
    """GSM8K: the gold number is the text after '####' on the answer's last line."""
    question = _require(obj, "question", where)
    answer = _require(obj, "answer", where)
    if "####" not in answer:
        raise DataError(f"{where}: answer has no '####' final-answer line")
    return Record(id=str(obj.get("id", index)), input=question, answer=answer, options=(), label="")


def template_fields(text: str) -> set[str]:
    """The record fields a `str.format` template reads (`{a.b}` and `{a[0]}` read `a`)."""
    return {re.split(r"[.\[]", f)[0] for _, f, _, _ in string.Formatter().parse(text) if f is not None}


def _has(obj: dict) -> str:
    return ", ".join(sorted(map(str, obj))) or "none"


def parse_fields(obj: dict, where: str, index: int, spec: dict, key: str = "local") -> Record:
    """Any text-classification table: `input` template over the record's fields, `label`
    field holding the label word, an index into `label_words` (an int, or a digit string as
    CSV and text files give it), or a key of `label_words` when that maps raw labels to words."""
    template = spec["input"]
    for name in sorted(template_fields(template)):
        value = obj.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            # A CSV or text record has every column: a missing value is an empty one.
            raise DataError(
                f"{where}: field {name!r} asked for by {key}.input ({template!r}) is "
                f"{'empty' if name in obj else 'missing'}; the record has fields: {_has(obj)}"
            )
    text = template.format(**obj)
    label_field = spec.get("label", "label")
    raw = obj.get(label_field)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise DataError(
            f"{where}: field {label_field!r} named by {key}.label is missing or empty; "
            f"the record has fields: {_has(obj)}"
        )
    answer, words = label_word(raw, spec["label_words"])
    if answer is None:
        raise DataError(f"{where}: label {raw!r} is not among the label words {words} ({key}.label_words)")
    return Record(id=str(obj.get("id", index)), input=text, answer=answer, options=tuple(words), label=answer)


def label_word(raw, label_words: list | dict) -> tuple[str | None, list[str]]:
    """(the label word of a raw label, or None; the label words in option order)."""
    if isinstance(label_words, dict):
        # Keys as text: YAML reads `{0: negative}` with an int key, a CSV cell gives "0".
        words = list(label_words.values())
        return {str(k): v for k, v in label_words.items()}.get(str(raw)), words
    words = list(label_words)
    # A native int (bool too: BoolQ's False/True index [no, yes]) is an index; a string is
    # the word itself, else, when it is all digits (CSV and text give every value as a
    # string), an index.
    if isinstance(raw, int) and 0 <= raw < len(words):
        return words[raw], words
    text = str(raw)
    if text in words:
        return text, words
    if text.strip().isdigit() and int(text) < len(words):
        return words[int(text)], words
    return None, words


@dataclass
class Skipped:
    """Rows left out under `bad_records: skip`, each with where it was and why."""

    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, error: DataError) -> None:
        where, _, reason = str(error).partition(": ")
        self.rows.append((where, reason))


def parse_records(
    rows: Iterable[tuple[str, dict | DataError]],
    fmt: str,
    spec: dict | None = None,
    skipped: Skipped | None = None,
    key: str = "local",
) -> list[Record]:
    """Parse (location, object) pairs with the parser for `fmt` (record_formats.FORMATS).

    A bad row raises DataError naming its location, unless `skipped` is given:
    then it is recorded there and left out. `key` is the config key of the source
    (`tasks.<task>.local`), which the messages name.
    """
    # The registry imports this module's parsers (and any format module added there).
    from demoscope.data.record_formats import FORMATS

    if fmt not in FORMATS:
        raise ValueError(f"unknown record format {fmt!r}; allowed: {sorted(FORMATS)}")
    parse = FORMATS[fmt]
    records = []
    for i, (where, obj) in enumerate(rows):
        try:
            if isinstance(obj, DataError):
                raise obj
            records.append(parse(obj, where, i, spec or {}, key))
        except DataError as err:
            if skipped is None:
                raise
            skipped.add(err)
    return records


# The file types a local split may have, as `datasets` reads them locally, each by its extension;
# any file is read as text lines when the source sets `pattern`.
EXTENSIONS = ("jsonl", "json", "csv", "tsv", "parquet", "txt")


def jsonl_rows(path: Path) -> Iterator[tuple[str, dict | DataError]]:
    """(file:line, object) per line; a bad line comes as its DataError, so skipping can go on past it."""
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            where = f"{path}:{lineno}"
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                yield where, DataError(f"{where}: not valid JSON ({err.msg})")
                continue
            yield where, obj if isinstance(obj, dict) else DataError(f"{where}: expected a JSON object")


def json_rows(path: Path) -> Iterator[tuple[str, dict | DataError]]:
    """A JSON array of objects (`file#index`), or a mapping with one such array (`{"data": [...]}`);
    a `.json` file that holds JSON Lines is read as such, as `datasets` does."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        yield from jsonl_rows(path)
        return
    if isinstance(data, dict):
        lists = [value for value in data.values() if isinstance(value, list)]
        if len(lists) != 1:
            raise DataError(f"{path}: a JSON file holds an array of records, or an object with exactly one such array")
        data = lists[0]
    if not isinstance(data, list):
        raise DataError(f"{path}: a JSON file holds an array of records")
    for i, obj in enumerate(data):
        where = f"{path}#{i}"
        yield where, obj if isinstance(obj, dict) else DataError(f"{where}: expected a JSON object")


def delimited_rows(path: Path, delimiter: str) -> Iterator[tuple[str, dict | DataError]]:
    """CSV / TSV with a header row; every value is a string. `file:line` counts the header as line 1."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        if not reader.fieldnames:
            return
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row:
                yield where, DataError(f"{where}: more values than the header has columns ({', '.join(reader.fieldnames)})")
                continue
            if all(value in (None, "") for value in row.values()):
                continue
            yield where, row


def parquet_rows(path: Path) -> Iterator[tuple[str, dict | DataError]]:
    import polars as pl

    for i, row in enumerate(pl.read_parquet(path).iter_rows(named=True)):
        yield f"{path}#{i}", row


def text_rows(path: Path, pattern: str, key: str = "local") -> Iterator[tuple[str, dict | DataError]]:
    """One record per non-blank line: the named groups of `pattern` (Python `re`, matched
    against the whole line) are its fields. A line that does not match is a bad record."""
    regex = re.compile(pattern)
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            match = regex.fullmatch(line)
            if match is None:
                yield where, DataError(f"{where}: the line does not match {key}.pattern {pattern!r}")
                continue
            yield where, {name: value for name, value in match.groupdict().items() if value is not None}


def file_rows(path: Path, spec: dict | None = None, key: str = "local") -> Iterator[tuple[str, dict | DataError]]:
    """The rows of one local file: text lines split by `pattern` when the source sets one,
    else by the file's extension."""
    spec = spec or {}
    path = Path(path)
    if spec.get("pattern"):
        return text_rows(path, spec["pattern"], key)
    ext = path.name.rsplit(".", 1)[-1].lower() if "." in path.name else ""
    if ext == "jsonl":
        return jsonl_rows(path)
    if ext == "json":
        return json_rows(path)
    if ext in ("csv", "tsv"):
        return delimited_rows(path, "," if ext == "csv" else "\t")
    if ext == "parquet":
        return parquet_rows(path)
    raise DataError(
        f"{path}: cannot tell how to read a '.{ext}' file; local files are "
        f"{', '.join('.' + e for e in EXTENSIONS if e != 'txt')}, or text lines split by {key}.pattern"
    )


def split_path(directory: Path, split: str, spec: dict | None = None) -> Path | None:
    """The file of one split: `files.<split>` when the source names it, else the one
    `<split>.<ext>` in the folder (None when there is none)."""
    spec = spec or {}
    directory = Path(directory)
    named = (spec.get("files") or {}).get(split)
    if named:
        return directory / named
    found = [directory / f"{split}.{ext}" for ext in EXTENSIONS if (directory / f"{split}.{ext}").exists()]
    if len(found) > 1:
        raise DataError(f"{directory}: {len(found)} files for the {split} split ({', '.join(p.name for p in found)}); keep one")
    return found[0] if found else None


def load_local_split(
    directory: Path,
    split: str,
    fmt: str,
    spec: dict | None = None,
    skipped: Skipped | None = None,
    key: str = "local",
) -> list[Record]:
    path = split_path(directory, split, spec)
    if path is None or not path.exists():
        shown = path or Path(directory) / f"{split}.jsonl"
        raise DataError(f"{shown}: no such file (split '{split}' of a local task folder)")
    before = len(skipped.rows) if skipped is not None else 0
    records = parse_records(file_rows(path, spec, key), fmt, spec, skipped, key)
    if not records:
        left_out = len(skipped.rows) - before if skipped is not None else 0
        why = f"all {left_out} were skipped as bad (bad_records: skip)" if left_out else "the file is empty"
        raise DataError(f"{path}: no records in the {split} split ({why})")
    return records


def load_hub_split(
    hub: dict, split: str, fmt: str, skipped: Skipped | None = None, key: str = "hub"
) -> list[Record]:
    """Load one split from a Hugging Face dataset id (or a local dataset folder)."""
    import datasets

    name = hub["splits"].get(split)
    if name is None:
        raise DataError(f"hub source {hub['id']!r} declares no '{split}' split")
    data = datasets.load_dataset(hub["id"], hub.get("config"), split=name)
    rows = ((f"{hub['id']}[{name}]#{i}", dict(row)) for i, row in enumerate(data))
    records = parse_records(rows, fmt, hub, skipped, key)
    if not records:
        raise DataError(f"{hub['id']}[{name}]: no records in the {split} split ({key}.splits.{split})")
    return records


def peek_fields(path: Path, spec: dict | None = None, key: str = "local") -> list[str] | None:
    """The field names of a local file's first record, read cheaply (a header, a schema, a
    line), so that a config can be checked against its data before any job; None when the
    file holds no record."""
    spec = spec or {}
    if spec.get("pattern"):
        groups = list(re.compile(spec["pattern"]).groupindex)
        with open(path, encoding="utf-8") as handle:
            return groups if any(line.strip() for line in handle) else None
    ext = Path(path).name.rsplit(".", 1)[-1].lower()
    if ext in ("csv", "tsv"):
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter="," if ext == "csv" else "\t")
            header = next(reader, None)
            return header if header and next(reader, None) is not None else None
    if ext == "parquet":
        import polars as pl

        schema = pl.read_parquet_schema(path)
        return list(schema) if pl.scan_parquet(path).head(1).collect().height else None
    for _, obj in file_rows(path, spec, key):
        if isinstance(obj, dict):
            return list(obj)
    return None
