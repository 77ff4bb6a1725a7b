from collections import Counter

import pytest

from demoscope.data.records import Record
from demoscope.data.sampling import allocate, balanced_sample


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

    from demoscope.data.prompts import build_prompt_tables
    from demoscope.data.templates import Template

    def split(name: str, n: int) -> list[Record]:
        # DataICL records carry no id: each file numbers its own from 0.
        return [Record(id=str(i), input=f"{name} {i}", answer=lab, options=("neg", "pos"), label=lab)
                for i, lab in zip(range(n), ["neg", "pos"] * n)]

    train, dev = split("train", 10), split("dev", 6)
    dev[0] = Record(id="0", input="train 3", answer="pos", options=("neg", "pos"), label="pos")  # a candidate again
    tokenizer = lambda text, add_special_tokens=True: SimpleNamespace(input_ids=text.split())  # noqa: E731
    tables = build_prompt_tables(
        {"train": train, "dev": dev, "test": split("test", 2)}, Template.from_config(None),
        {"candidates": 10, "quality_queries": 5, "test_queries": 0, "probe_queries": 0}, 0, tokenizer,
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

    from demoscope.data.prompts import build_prompt_tables
    from demoscope.data.templates import Template

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


def test_probe_queries_are_never_quality_test_or_candidate_inputs():
    """The `query` lens's probe queries share no input with the quality queries (nor the test
    queries, nor the candidates), even where records repeat across splits."""
    from types import SimpleNamespace

    from demoscope.data.prompts import build_prompt_tables
    from demoscope.data.templates import Template

    def split(name: str, n: int) -> list[Record]:
        return [Record(id=str(i), input=f"{name} {i}", answer=lab, options=("neg", "pos"), label=lab)
                for i, lab in zip(range(n), ["neg", "pos"] * n)]

    train, dev, test = split("train", 12), split("dev", 30), split("test", 10)
    dev[1] = Record(id="1", input="train 3", answer="pos", options=("neg", "pos"), label="pos")
    dev[2] = Record(id="2", input="test 4", answer="neg", options=("neg", "pos"), label="neg")
    tokenizer = lambda text, add_special_tokens=True: SimpleNamespace(input_ids=text.split())  # noqa: E731
    sizes = {"candidates": 12, "quality_queries": 10, "test_queries": 10, "probe_queries": 16}
    tables = build_prompt_tables({"train": train, "dev": dev, "test": test}, Template.from_config(None), sizes, 0,
                                 tokenizer)
    probes = set(tables["probe_queries"]["query"])
    assert len(probes) == 16 and all(p.startswith("dev") for p in probes)
    for other in ("quality_queries", "test_queries"):
        assert not probes & set(tables[other]["query"])
    assert not probes & set(tables["candidates"]["input"])
    assert sorted(Counter(tables["probe_queries"]["label"]).values()) == [8, 8]
    # dev holds 30 records: 10 quality queries, one candidate's duplicate, and one test query's
    # (which may be a quality query too).
    with pytest.raises(ValueError, match=r"probe queries \(sizes.probe_queries.*asked for 20 records but only 1[89]"):
        build_prompt_tables({"train": train, "dev": dev, "test": test}, Template.from_config(None),
                            {**sizes, "probe_queries": 20}, 0, tokenizer)


@pytest.mark.parametrize("task", ["sst2", "arc_challenge", "gsm8k"])
def test_probe_queries_on_the_real_data(task):
    """The default config's sizes (with config/breadth.yaml's) on the offline data: no probe query is a quality or test query."""
    from types import SimpleNamespace

    from conftest import SHARED_DATA, default_config
    from demoscope.data.prompts import build_prompt_tables
    from demoscope.data.tasks import SPLITS, has_split, load_split
    from demoscope.data.templates import Template

    if not SHARED_DATA.exists():
        pytest.skip(f"the offline data folder {SHARED_DATA} is not beside this checkout")
    config = default_config()["tasks"][task]
    splits = {s: load_split(config, s, str(SHARED_DATA)) for s in SPLITS if s != "dev" or has_split(config, s, str(SHARED_DATA))}
    tokenizer = lambda text, add_special_tokens=True: SimpleNamespace(input_ids=text.split())  # noqa: E731
    tables = build_prompt_tables(splits, Template.from_config(config.get("template")),
                                 {**config["sizes"], "probe_queries": 8}, 0, tokenizer)
    probes = set(tables["probe_queries"]["input"])
    assert len(probes) == 8
    for other in ("quality_queries", "test_queries", "candidates"):
        assert not probes & set(tables[other]["input"])


def test_an_oversized_draw_names_its_config_key():
    from types import SimpleNamespace

    from demoscope.data.prompts import build_prompt_tables
    from demoscope.data.templates import Template

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
