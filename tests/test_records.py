import json

import pytest

from demoscope.data.records import DataError, load_local_split, parse_records
from demoscope.data.tasks import load_split

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
    # A mapping of raw labels to words, its keys as YAML reads them (ints) or as text.
    for words in ({0: "negative", 1: "positive"}, {"0": "negative", "1": "positive"}):
        rows = [("a.csv:2", {"sentence": "fine", "label": "1"}), ("hub#1", {"sentence": "dull", "label": 0})]
        assert [r.answer for r in parse_records(rows, "fields", {**spec, "label_words": words})] == ["positive", "negative"]


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
    from demoscope.data.tasks import has_split

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
    from demoscope.data.records import Skipped

    good = json.dumps({"input": "x", "output": "no", "options": ["no", "yes"]})
    bad_label = json.dumps({"input": "y", "output": "maybe", "options": ["no", "yes"]})
    (tmp_path / "train.jsonl").write_text("\n".join([good, "{oops", bad_label, good]) + "\n")
    skipped = Skipped()
    records = load_local_split(tmp_path, "train", "dataicl", skipped=skipped)
    assert len(records) == 2
    path = tmp_path / "train.jsonl"
    assert [where for where, _ in skipped.rows] == [f"{path}:2", f"{path}:3"]
    assert "not valid JSON" in skipped.rows[0][1] and "label 'maybe' is not among the options" in skipped.rows[1][1]


# A question-type task as a new user has it: `LABEL:detail question` lines, train and test only.
QUESTION_LINES = [
    "DESC:manner How did serfdom develop in and then leave Russia ?",
    "ENTY:cremat What films featured the character Popeye Doyle ?",
    "HUM:ind Who killed Gandhi ?",
    "LOC:city What is the capital of Peru ?",
    "NUM:date When did the war end ?",
    "DESC:def What is a golf ball made of ?",
]
QUESTION_TASK = {
    "kind": "classification",
    "local": {
        "dir": "questions",
        "format": "fields",
        "pattern": r"(?P<label>[A-Z]+):(?P<detail>\S+) (?P<question>.*)",
        "input": "Question: {question}\nType:",
        "label_words": {"DESC": "description", "ENTY": "entity", "HUM": "human", "LOC": "location", "NUM": "number"},
    },
    "sizes": {"candidates": 12, "quality_queries": 5, "test_queries": 4, "probe_queries": 0},
}


def write_question_files(root, n_train=30, n_test=10, train_name="train.txt", test_name="test.txt"):
    folder = root / "questions"
    folder.mkdir(parents=True, exist_ok=True)
    lines = lambda n: "".join(QUESTION_LINES[i % len(QUESTION_LINES)].replace("?", f"{i} ?") + "\n" for i in range(n))  # noqa: E731
    (folder / train_name).write_text(lines(n_train) + "\n")  # a trailing blank line is no record
    (folder / test_name).write_text(lines(n_test))
    return folder


def prompt_tables(task, root, name="questions"):
    """What build_prompts makes of a task, read by config alone (no dev split: quality queries
    come from train), with a whitespace tokenizer."""
    from types import SimpleNamespace

    from demoscope.data.prompts import build_prompt_tables
    from demoscope.data.tasks import SPLITS, has_split
    from demoscope.data.templates import Template

    splits = {s: load_split(task, s, root, name=name) for s in SPLITS if has_split(task, s, root)}
    tokenizer = lambda text, add_special_tokens=True: SimpleNamespace(input_ids=text.split())  # noqa: E731
    return build_prompt_tables(splits, Template.from_config(None), task["sizes"], 0, tokenizer, key=f"tasks.{name}.sizes")


def test_a_plain_text_task_reads_by_config_alone(tmp_path):
    from demoscope.data.tasks import source_errors

    write_question_files(tmp_path)
    assert source_errors("questions", QUESTION_TASK, tmp_path) == []
    train = load_split(QUESTION_TASK, "train", tmp_path)
    assert len(train) == 30
    assert train[2].input == "Question: Who killed Gandhi 2 ?\nType:"
    assert train[2].answer == train[2].label == "human"
    assert train[2].options == ("description", "entity", "human", "location", "number")
    tables = prompt_tables(QUESTION_TASK, tmp_path)
    # No dev split: label-balanced quality queries held out of train, never a candidate.
    queries, candidates = tables["quality_queries"], tables["candidates"]
    assert sorted(queries["label"]) == ["description", "entity", "human", "location", "number"]
    assert not set(queries["input"]) & set(candidates["input"])
    assert set(tables["test_queries"]["input"]) <= {r.input for r in load_split(QUESTION_TASK, "test", tmp_path)}


def test_files_names_a_split_file_of_any_name(tmp_path):
    write_question_files(tmp_path, train_name="train_5500.label", test_name="TREC_10.label")
    task = {**QUESTION_TASK, "local": {**QUESTION_TASK["local"], "files": {"train": "train_5500.label", "test": "TREC_10.label"}}}
    assert len(load_split(task, "test", tmp_path)) == 10


def test_a_line_the_pattern_does_not_match_names_file_line_and_key(tmp_path):
    folder = write_question_files(tmp_path)
    (folder / "train.txt").write_text("HUM:ind Who ?\nnot a labelled line\n")
    with pytest.raises(DataError) as err:
        load_split(QUESTION_TASK, "train", tmp_path, name="questions")
    assert str(err.value).startswith(f"{folder / 'train.txt'}:2: the line does not match tasks.questions.local.pattern")


SENTIMENT = [{"id": f"r{i}", "review": f"text {i}", "stars": ["neg", "pos"][i % 2], "score": i % 2} for i in range(12)]


def write_table(path, rows, kind):
    import polars as pl

    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame(rows)
    if kind == "jsonl":
        write_jsonl(path, rows)
    elif kind == "json":
        path.write_text(json.dumps(rows))
    elif kind == "csv":
        frame.write_csv(path)
    elif kind == "tsv":
        frame.write_csv(path, separator="\t")
    else:
        frame.write_parquet(path)


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "tsv", "parquet"])
@pytest.mark.parametrize("label", ["stars", "score"])  # the word itself, or an index into label_words
def test_fields_reads_every_local_file_type(tmp_path, kind, label):
    for split in ("train", "test"):
        write_table(tmp_path / "reviews" / f"{split}.{kind}", SENTIMENT, kind)
    task = {"kind": "classification", "sizes": {"candidates": 6, "quality_queries": 4, "test_queries": 4, "probe_queries": 0},
            "local": {"dir": "reviews", "format": "fields", "input": "Review: {review}\nSentiment:", "label": label,
                      "label_words": ["neg", "pos"]}}
    records = load_split(task, "train", tmp_path)
    assert [(r.id, r.input, r.answer) for r in records[:2]] == [("r0", "Review: text 0\nSentiment:", "neg"),
                                                                ("r1", "Review: text 1\nSentiment:", "pos")]
    tables = prompt_tables(task, tmp_path, "reviews")
    assert sorted(tables["quality_queries"]["label"]) == ["neg", "neg", "pos", "pos"]


def test_a_record_without_a_field_names_file_line_key_and_its_fields(tmp_path):
    rows = [dict(SENTIMENT[0]), {k: v for k, v in SENTIMENT[1].items() if k != "review"}]
    write_table(tmp_path / "reviews" / "train.jsonl", rows, "jsonl")
    task = {"local": {"dir": "reviews", "format": "fields", "input": "Review: {review}\nSentiment:", "label": "stars",
                      "label_words": ["neg", "pos"]}}
    with pytest.raises(DataError) as err:
        load_split(task, "train", tmp_path, name="reviews")
    path = tmp_path / "reviews" / "train.jsonl"
    assert str(err.value) == (
        f"{path}:2: field 'review' asked for by tasks.reviews.local.input ('Review: {{review}}\\nSentiment:') "
        f"is missing; the record has fields: id, score, stars"
    )
    # A CSV row has every column: an empty cell is the missing value (line 3: the header is line 1).
    path.unlink()
    write_table(path.with_suffix(".csv"), [SENTIMENT[0], {**SENTIMENT[1], "review": ""}], "csv")
    with pytest.raises(DataError, match=r"train.csv:3: field 'review' asked for by tasks.reviews.local.input .* is empty; "
                                        r"the record has fields: id, review, score, stars"):
        load_split(task, "train", tmp_path, name="reviews")
    write_table(path.with_suffix(".csv"), [SENTIMENT[0], {**SENTIMENT[1], "stars": ""}], "csv")
    with pytest.raises(DataError, match=r"train.csv:3: field 'stars' named by tasks.reviews.local.label is missing or empty; "
                                        r"the record has fields: id, review, score, stars"):
        load_split(task, "train", tmp_path, name="reviews")


def test_an_empty_split_file_is_named(tmp_path):
    (tmp_path / "train.jsonl").write_text("")
    with pytest.raises(DataError, match=f"{tmp_path / 'train.jsonl'}: no records in the train split \\(the file is empty\\)"):
        load_local_split(tmp_path, "train", "dataicl")
    (tmp_path / "train.jsonl").write_text("{oops\n")
    from demoscope.data.records import Skipped

    with pytest.raises(DataError, match=r"train.jsonl: no records in the train split \(all 1 were skipped as bad"):
        load_local_split(tmp_path, "train", "dataicl", skipped=Skipped())


def test_local_sources_are_checked_against_their_files_before_any_job(tmp_path):
    """What the workflow checks when it starts (common.smk): the fields each template names, every
    split's file, empty files."""
    from demoscope.data.tasks import source_errors

    for split in ("train", "test"):
        write_table(tmp_path / "reviews" / f"{split}.csv", SENTIMENT, "csv")
    task = {"local": {"dir": "reviews", "format": "fields", "input": "Review: {reveiw}\nSentiment:", "label": "star",
                      "label_words": ["neg", "pos"]}}
    path = tmp_path / "reviews" / "train.csv"
    errors = source_errors("reviews", task, tmp_path)
    assert f"tasks.reviews.local.input: placeholder {{reveiw}} is not a field of {path} (its fields: id, review, stars, score)" in errors
    assert f"tasks.reviews.local.label: 'star' is not a field of {path} (its fields: id, review, stars, score)" in errors
    (tmp_path / "reviews" / "test.csv").write_text("id,review,stars,score\n")
    (tmp_path / "reviews" / "train.json").write_text("[]")
    errors = source_errors("reviews", {"local": {"dir": "reviews", "format": "dataicl"}}, tmp_path)
    assert errors == [
        f"tasks.reviews.local: {tmp_path / 'reviews'}: 2 files for the train split (train.json, train.csv); keep one",
        f"tasks.reviews.local: {tmp_path / 'reviews' / 'test.csv'} holds no records (the test split is empty)",
    ]
    errors = source_errors("nothing", {"local": {"dir": "nothing", "format": "dataicl"}}, tmp_path)
    assert [e.split(" does not exist")[0] for e in errors] == [
        f"tasks.nothing.local: the {s} split's file {tmp_path / 'nothing'}/{s}.<jsonl|json|csv|tsv|parquet|txt>" for s in ("train", "test")
    ]


@pytest.mark.slow
def test_a_plain_text_task_runs_build_prompts_by_config_alone(tmp_path, tiny_llama):
    """The workflow end to end up to the prompt tables: a question-type text file, train and
    test only, read through config (common.smk lists the .txt files as the job's inputs)."""
    import polars as pl

    from conftest import make_workspace, snakemake, tiny_config

    write_question_files(tmp_path / "data")
    config = tiny_config(tiny_llama, tmp_path / "data")
    config["tasks"] = {"questions": {**QUESTION_TASK, "template": {"instruction": "Name each question's type."}}}
    # Too few records for probe queries: the `query` mask, which reads them, is left out.
    config["dumps"] = {"causal": ["mlp_out"]}
    workdir = make_workspace(tmp_path / "ws", config)
    snakemake(workdir, "results/tiny/questions/prompts/candidates.parquet")
    prompts = workdir / "results" / "tiny" / "questions" / "prompts"
    queries = pl.read_parquet(prompts / "quality_queries.parquet")
    candidates = pl.read_parquet(prompts / "candidates.parquet")
    assert sorted(queries["label"]) == ["description", "entity", "human", "location", "number"]
    assert candidates.height == 12 and not set(queries["input"]) & set(candidates["input"])
    assert candidates["demonstration"][0].startswith("Question: ") and "\nType: " in candidates["demonstration"][0]
    log = (workdir / "results" / "logs" / "build_prompts" / "tiny" / "questions.log").read_text()
    assert "no dev split: quality queries are held out of train" in log
