import json

import pytest

from demoscope.records import DataError, load_local_split, parse_records
from demoscope.tasks import load_split

from conftest import SHARED_DATA, write_jsonl


def test_dataicl_keeps_input_and_label(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [
        {"task": "glue-sst2", "input": "Review: orgy \nSentiment:", "output": "negative", "options": ["negative", "positive"]},
    ])
    (record,) = load_local_split(tmp_path, "train", "dataicl")
    assert record.input == "Review: orgy \nSentiment:"
    assert record.answer == record.label == "negative"
    assert record.options == ("negative", "positive")


def test_ai2_reads_digit_labels_and_five_choices(tmp_path):
    choices = [{"text": t, "label": str(i + 1)} for i, t in enumerate("abcde")]
    write_jsonl(tmp_path / "dev.jsonl", [{"id": "q1", "question": {"stem": "Which?", "choices": choices}, "answerKey": "4"}])
    (record,) = load_local_split(tmp_path, "dev", "ai2_mc")
    assert record.options == tuple("abcde")
    assert record.answer == "d" and record.label == "3"


def test_ai2_reads_the_flat_hub_layout():
    row = {"id": "x", "question": "Why?", "choices": {"text": ["p", "q", "r"], "label": ["A", "B", "C"]}, "answerKey": "C"}
    (record,) = parse_records([("hub#0", row)], "ai2_mc")
    assert (record.input, record.answer, record.label) == ("Why?", "r", "2")


def test_fields_format_maps_integer_labels_to_words():
    spec = {"input": "Review: {sentence}\nSentiment:", "label": "label", "label_words": ["negative", "positive"]}
    (record,) = parse_records([("hub#0", {"sentence": "fine", "label": 1})], "fields", spec)
    assert record.input == "Review: fine\nSentiment:" and record.answer == "positive"


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"input": "x", "output": "maybe", "options": ["no", "yes"]}', "label 'maybe' is not among the options"),
        ('{"input": "", "output": "no", "options": ["no", "yes"]}', "missing or empty field 'input'"),
        ('{"input": "x", "options": ["no", "yes"]}', "missing or empty field 'output'"),
        ('{"input": "x", "output": "no", ', "not valid JSON"),
    ],
)
def test_bad_records_name_file_and_line(tmp_path, line, message):
    good = json.dumps({"input": "x", "output": "no", "options": ["no", "yes"]})
    (tmp_path / "train.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(DataError) as err:
        load_local_split(tmp_path, "train", "dataicl")
    assert f"{tmp_path / 'train.jsonl'}:2" in str(err.value)
    assert message in str(err.value)


def test_ai2_answer_key_must_be_a_choice(tmp_path):
    choices = [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]
    write_jsonl(tmp_path / "test.jsonl", [{"id": "q", "question": {"stem": "?", "choices": choices}, "answerKey": "E"}])
    with pytest.raises(DataError, match=r"test.jsonl:1: answerKey 'E' is not among the choice labels"):
        load_local_split(tmp_path, "test", "ai2_mc")


def test_missing_split_file_is_named(tmp_path):
    with pytest.raises(DataError, match="dev.jsonl: no such file"):
        load_local_split(tmp_path, "dev", "dataicl")


def test_a_task_may_lack_a_dev_split(tmp_path):
    from demoscope.tasks import has_split

    write_jsonl(tmp_path / "gsm8k" / "train.jsonl", [{"question": "1 + 1?", "answer": "2\n#### 2"}])
    write_jsonl(tmp_path / "gsm8k" / "test.jsonl", [{"question": "2 + 2?", "answer": "4\n#### 4"}])
    local = {"local": {"dir": "gsm8k", "format": "gsm8k"}}
    assert [has_split(local, s, tmp_path) for s in ("train", "dev", "test")] == [True, False, True]
    hub = {"hub": {"id": "openai/gsm8k", "format": "gsm8k", "splits": {"train": "train", "test": "test"}}}
    assert [has_split(hub, s, None) for s in ("train", "dev", "test")] == [True, False, True]


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"the offline data folder {SHARED_DATA} is not beside this checkout")
@pytest.mark.parametrize(
    "task, fmt, counts",
    [
        ("sst2", "dataicl", {"train": 1000, "dev": 100, "test": 1000}),
        ("boolq", "dataicl", {"train": 1000, "dev": 100, "test": 1000}),
        ("arc_challenge", "ai2_mc", {"train": 1119, "dev": 299, "test": 1172}),
        ("openbookqa", "ai2_mc", {"train": 4957, "dev": 500, "test": 500}),
        ("gsm8k", "gsm8k", {"train": 7473, "test": 1319}),
    ],
)
def test_every_real_file_reads_as_it_is(task, fmt, counts):
    for split, n in counts.items():
        records = load_split({"local": {"dir": task, "format": fmt}}, split, SHARED_DATA)
        assert len(records) == n
        assert all(r.answer for r in records)


def test_hub_source_reads_a_dataset_by_id_with_split_slices(tmp_path, monkeypatch):
    """The hub path, offline: `datasets` resolves a local dataset folder exactly as it resolves an id."""
    import polars as pl

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    rows = {"sentence": [f"text {i}" for i in range(10)], "label": [i % 2 for i in range(10)]}
    pl.DataFrame(rows).write_parquet(tmp_path / "train.parquet")
    pl.DataFrame(rows).head(4).write_parquet(tmp_path / "validation.parquet")
    task = {"hub": {"id": str(tmp_path), "format": "fields", "splits": {"train": "train[:-3]", "dev": "train[-3:]", "test": "validation"},
                    "input": "Review: {sentence}\nSentiment:", "label": "label", "label_words": ["negative", "positive"]}}
    train, dev, test = (load_split(task, s, None) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (7, 3, 4)
    assert dev[0].input == "Review: text 7\nSentiment:" and dev[0].answer == "positive"


def test_skip_mode_leaves_bad_rows_out_and_says_where(tmp_path):
    from demoscope.records import Skipped

    good = json.dumps({"input": "x", "output": "no", "options": ["no", "yes"]})
    bad_label = json.dumps({"input": "y", "output": "maybe", "options": ["no", "yes"]})
    (tmp_path / "train.jsonl").write_text("\n".join([good, "{oops", bad_label, good]) + "\n")
    skipped = Skipped()
    records = load_local_split(tmp_path, "train", "dataicl", skipped=skipped)
    assert len(records) == 2
    path = tmp_path / "train.jsonl"
    assert [where for where, _ in skipped.rows] == [f"{path}:2", f"{path}:3"]
    assert "not valid JSON" in skipped.rows[0][1] and "label 'maybe' is not among the options" in skipped.rows[1][1]
