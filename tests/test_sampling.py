from collections import Counter

import pytest

from demoscope.records import Record
from demoscope.sampling import allocate, balanced_sample


def pool(counts: dict[str, int]) -> list[Record]:
    return [Record(id=f"{lab}{i}", input="x", answer=lab, label=lab) for lab, n in counts.items() for i in range(n)]


def test_balanced_and_seeded():
    records = pool({"neg": 50, "pos": 50})
    a = balanced_sample(records, 20, seed=0)
    assert Counter(r.label for r in a) == {"neg": 10, "pos": 10}
    assert [r.id for r in a] == [r.id for r in balanced_sample(records, 20, seed=0)]
    assert [r.id for r in a] != [r.id for r in balanced_sample(records, 20, seed=1)]


def test_small_strata_give_what_they_have():
    # ARC: one question in the training split has a fifth choice.
    assert allocate(10, {"0": 30, "1": 30, "2": 30, "3": 30, "4": 1}) == {"0": 3, "1": 2, "2": 2, "3": 2, "4": 1}
    assert sum(allocate(7, {"a": 2, "b": 100, "c": 100}).values()) == 7


def test_excluded_ids_are_never_drawn():
    records = pool({"a": 5, "b": 5})
    drawn = balanced_sample(records, 6, seed=0, exclude={"a0", "b0"})
    assert not {"a0", "b0"} & {r.id for r in drawn}


def test_asking_for_too_many_says_so():
    with pytest.raises(ValueError, match="quality queries: asked for 30 records but only 10"):
        balanced_sample(pool({"a": 5, "b": 5}), 30, seed=0, what="quality queries")


def test_quality_queries_exclude_candidates_by_content_not_by_per_file_ids():
    from types import SimpleNamespace

    from demoscope.prompts import build_prompt_tables
    from demoscope.templates import Template

    def split(name: str, n: int) -> list[Record]:
        # DataICL records carry no id: each file numbers its own from 0.
        return [Record(id=str(i), input=f"{name} {i}", answer=lab, options=("neg", "pos"), label=lab)
                for i, lab in zip(range(n), ["neg", "pos"] * n)]

    train, dev = split("train", 10), split("dev", 6)
    dev[0] = Record(id="0", input="train 3", answer="pos", options=("neg", "pos"), label="pos")  # a candidate again
    tokenizer = lambda text, add_special_tokens=True: SimpleNamespace(input_ids=text.split())  # noqa: E731
    tables = build_prompt_tables(
        {"train": train, "dev": dev, "test": split("test", 2)}, Template.from_config(None),
        {"candidates": 10, "quality_queries": 5, "test_queries": 0}, 0, tokenizer,
    )
    # Every train record is a candidate, and dev ids 0..5 all repeat train ids: only the true
    # duplicate is left out.
    assert sorted(tables["quality_queries"]["input"]) == [f"dev {i}" for i in range(1, 6)]


def test_excluding_more_records_replaces_only_those_drawn():
    records = [Record(id=str(i), input=f"q{i}", answer="a") for i in range(40)]
    before = balanced_sample(records, 10, seed=3)
    dropped = {before[0].id, before[5].id, "39"}
    after = balanced_sample(records, 10, seed=3, exclude=dropped)
    assert not dropped & {r.id for r in after}
    assert len({r.id for r in before} & {r.id for r in after}) == 8


def gsm8k_like(n: int, name: str) -> list[Record]:
    return [Record(id=str(i), input=f"{name} question {i}", answer=f"so\n#### {i}") for i in range(n)]


def tables_without_dev(train, candidates: int, queries: int):
    from types import SimpleNamespace

    from demoscope.prompts import build_prompt_tables
    from demoscope.templates import Template

    tokenizer = lambda text, add_special_tokens=True: SimpleNamespace(input_ids=text.split())  # noqa: E731
    sizes = {"candidates": candidates, "quality_queries": queries, "test_queries": 3}
    return build_prompt_tables({"train": train, "test": gsm8k_like(5, "test")}, Template.from_config(None), sizes, 0,
                               tokenizer)


def test_without_a_dev_split_quality_queries_are_held_out_of_train():
    train = gsm8k_like(60, "train")
    train.append(Record(id="60", input=train[7].input, answer=train[7].answer))  # a duplicate inside train
    tables = tables_without_dev(train, 20, 6)
    drawn = lambda name, key="input": set(tables[name][key])  # noqa: E731
    assert len(drawn("quality_queries")) == 6 and drawn("quality_queries") <= {r.input for r in train}
    assert not drawn("quality_queries") & drawn("candidates")  # disjoint by content, duplicates too
    assert all(q.startswith("test") for q in tables["test_queries"]["input"])
    assert (tables["quality_queries"]["gold_index"] == -1).all() and (tables["quality_queries"]["label"] == "").all()
    # Changing the candidate count leaves the queries alone; more queries replace only the
    # candidates they take.
    assert set(tables_without_dev(train, 30, 6)["quality_queries"]["input"]) == drawn("quality_queries")
    more = tables_without_dev(train, 20, 10)
    assert set(more["quality_queries"]["input"]) > drawn("quality_queries")
    kept = drawn("candidates") - set(more["quality_queries"]["input"])
    assert kept <= set(more["candidates"]["input"]) and len(kept) < 20
    with pytest.raises(ValueError, match=r"sizes.candidates \(candidate pool, from train, quality queries held out\): asked for 58"):
        tables_without_dev(train, 58, 6)


def test_an_oversized_draw_names_its_config_key():
    from types import SimpleNamespace

    from demoscope.prompts import build_prompt_tables
    from demoscope.templates import Template

    records = lambda n, name: [Record(id=str(i), input=f"{name} {i}", answer=lab, options=("neg", "pos"), label=lab)  # noqa: E731
                               for i, lab in zip(range(n), ["neg", "pos"] * n)]
    tokenizer = lambda text, add_special_tokens=True: SimpleNamespace(input_ids=text.split())  # noqa: E731
    splits = {"train": records(10, "train"), "dev": records(6, "dev"), "test": records(4, "test")}
    for sizes, message in [
        ({"candidates": 5000, "quality_queries": 2}, r"tasks.reviews.sizes.candidates \(candidate pool, from train\): asked for 5000 records but only 10"),
        ({"candidates": 4, "quality_queries": 7}, r"tasks.reviews.sizes.quality_queries \(quality queries, from dev\): asked for 7 records but only 6"),
        ({"candidates": 4, "quality_queries": 2, "test_queries": 9}, r"tasks.reviews.sizes.test_queries \(test queries, from test\): asked for 9"),
    ]:
        with pytest.raises(ValueError, match=message):
            build_prompt_tables(splits, Template.from_config(None), sizes, 0, tokenizer, key="tasks.reviews.sizes")
