"""Batched greedy decoding against one prompt at a time, and the answer extraction of GSM8K."""

import pytest
import torch

from demoscope.lm import models
from demoscope.data.answers import exact_match, extract_number, gold_number
from demoscope.lm.generation import cut_at_stop, decode, eos_ids, generate

PREFIXES = ["Review: good film \nSentiment: positive", "Question: which water rock gas?\nAnswer: gas", "love", ""]
QUERIES = ["\n\nReview: dull", "\n\nQuestion: rock sun earth heat?\nAnswer:", "\n\nwhat"]


@pytest.fixture(autouse=True)
def one_thread():
    """A tiny model gains nothing from threads, and on a shared machine two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def encode(tok):
    prefixes = [tok(t).input_ids for t in PREFIXES]
    queries = [tok(t, add_special_tokens=False).input_ids for t in QUERIES]
    return prefixes, queries


def greedy_alone(model, tok, ids: list[int], max_new_tokens: int, stop: list[str]) -> tuple[str, list[int]]:
    """One prompt, no cache, no padding: the full logits at every step."""
    ids, generated = list(ids), []
    for _ in range(max_new_tokens):
        with torch.no_grad():
            token = model(torch.tensor([ids])).logits[0, -1].argmax().item()
        if token in eos_ids(model, tok):
            break
        ids.append(token)
        generated.append(token)
        if any(s in decode(tok, generated) for s in stop):
            break
    return cut_at_stop(decode(tok, generated), stop), generated


@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_qwen2"])
@pytest.mark.parametrize("batch_tokens", [60, 4096])
def test_batched_generation_equals_one_prompt_at_a_time(arch, batch_tokens, request):
    model, tok, _ = models.load(request.getfixturevalue(arch), "cpu", "float32")
    prefixes, queries = encode(tok)
    got = generate(model, tok, prefixes, queries, None, "cpu", 12, [], batch_tokens, progress=False)
    grid = [(p, q) for p in range(len(prefixes)) for q in range(len(queries))]
    assert len(got) == len(grid)
    for text, (p, q) in zip(got, grid):
        assert text == greedy_alone(model, tok, prefixes[p] + queries[q], 12, [])[0], (p, q)


def test_generation_equals_transformers_generate(tiny_llama):
    model, tok, _ = models.load(tiny_llama, "cpu", "float32")
    prefixes, queries = encode(tok)
    got = generate(model, tok, prefixes, queries, [(1, 1), (0, 2)], "cpu", 10, [], 4096, progress=False)
    for text, (p, q) in zip(got, [(1, 1), (0, 2)]):
        ids = torch.tensor([prefixes[p] + queries[q]])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=10,
                             min_new_tokens=0, pad_token_id=tok.pad_token_id)
        new = [t for t in out[0, ids.shape[1]:].tolist() if t not in eos_ids(model, tok)]
        assert text == decode(tok, new)


def test_pairs_come_back_in_pair_order(tiny_qwen2):
    model, tok, _ = models.load(tiny_qwen2, "cpu", "float32")
    prefixes, queries = encode(tok)
    grid = generate(model, tok, prefixes, queries, None, "cpu", 6, [], 4096, progress=False)
    pairs = [(2, 1), (0, 0), (2, 1), (3, 2), (1, 0)]
    got = generate(model, tok, prefixes, queries, pairs, "cpu", 6, [], 64, progress=False)
    assert got == [grid[p * len(queries) + q] for p, q in pairs]


def test_stop_strings_cut_the_output(tiny_llama):
    model, tok, _ = models.load(tiny_llama, "cpu", "float32")
    prefixes, queries = encode(tok)
    free = generate(model, tok, prefixes, queries, None, "cpu", 16, [], 4096, progress=False)
    # A stop string taken from the middle of each free output: the output ends just before it.
    for i, text in enumerate(free):
        p, q = divmod(i, len(queries))
        stop = text[len(text) // 2 : len(text) // 2 + 2]
        got = generate(model, tok, prefixes, queries, [(p, q)], "cpu", 16, ["\x00never", stop], 4096, progress=False)[0]
        assert got == text[: text.index(stop)]
        assert got == greedy_alone(model, tok, prefixes[p] + queries[q], 16, ["\x00never", stop])[0]


def test_token_limit_is_respected(tiny_qwen2):
    model, tok, _ = models.load(tiny_qwen2, "cpu", "float32")
    prefixes, queries = encode(tok)
    for limit in (1, 5):
        got = generate(model, tok, prefixes, queries, None, "cpu", limit, [], 4096, progress=False)
        for text, (p, q) in zip(got, [(p, q) for p in range(len(prefixes)) for q in range(len(queries))]):
            _, tokens = greedy_alone(model, tok, prefixes[p] + queries[q], limit, [])
            assert len(tokens) == limit and text == decode(tok, tokens)
    assert generate(model, tok, prefixes, queries, None, "cpu", 0, [], 4096, progress=False) == [""] * 12


def test_end_of_sequence_ends_a_row_early(tiny_llama):
    model, tok, _ = models.load(tiny_llama, "cpu", "float32")
    prefixes, queries = encode(tok)
    _, tokens = greedy_alone(model, tok, prefixes[0] + queries[1], 12, [])
    # Make the first token that greedy decoding repeats nowhere before it the end-of-sequence token.
    step = next(i for i in range(2, len(tokens)) if tokens[i] not in tokens[:i])
    model.generation_config.eos_token_id = tokens[step]
    got = generate(model, tok, prefixes, queries, [(0, 1), (1, 0)], "cpu", 12, [], 4096, progress=False)
    assert got[0] == decode(tok, tokens[:step])
    assert got[1] == greedy_alone(model, tok, prefixes[1] + queries[0], 12, [])[0]


def test_an_empty_query_is_refused(tiny_llama):
    model, tok, _ = models.load(tiny_llama, "cpu", "float32")
    with pytest.raises(ValueError, match="query 0 encodes to no tokens"):
        generate(model, tok, [[5]], [[]], None, "cpu", 4, [], 4096, progress=False)


@pytest.mark.parametrize(
    "text, number",
    [
        ("The total is 1,234 dollars.", "1234"),
        ("It drops by 8, to -5", "-5"),
        ("Each costs 3.50", "3.50"),
        ("She pays $12", "12"),
        ("So the answer is 12.", "12"),
        ("5 apples and 7 pears, 12 in all\n#### 12", "12"),
        ("From 3-5 hours", "5"),
        ("Totals: 1,234,567.5 and then", "1234567.5"),
        ("Lists 3,4,5", "5"),
        ("A pen costs $.50", ".50"),
        ("No number at all.", None),
        ("", None),
    ],
)
def test_extract_number_reads_the_last_number(text, number):
    assert extract_number(text) == number


def test_gold_number_is_after_the_markers():
    assert gold_number("She has 4 + 3 = <<4+3=7>>7\n#### 7") == "7"
    assert gold_number("He owes 2,000 - 500\n#### 1,500") == "1500"
    assert gold_number("... #### -3") == "-3"
    with pytest.raises(ValueError, match="no number after '####'"):
        gold_number("#### none")


@pytest.mark.parametrize(
    "output, gold, match",
    [
        ("Answer: 3.50", "#### 3.5", True),
        ("1,234 in all", "#### 1234", True),
        ("it is -5", "#### -5", True),
        ("it is 5", "#### -5", False),
        ("#### 12\n\nQuestion: 4 apples", "#### 12", False),  # the last number counts
        ("nothing", "#### 0", False),
        ("$12.", "#### 12", True),
    ],
)
def test_exact_match_compares_numbers(output, gold, match):
    assert exact_match(output, gold) is match


def test_min_new_tokens_holds_back_the_end_of_sequence(tiny_qwen2):
    model, tok, _ = models.load(tiny_qwen2, "cpu", "float32")
    prefixes, queries = encode(tok)
    _, tokens = greedy_alone(model, tok, prefixes[2] + queries[0], 8, [])
    model.generation_config.eos_token_id = tokens[0]  # the greedy first token now ends the sequence
    pairs = [(2, 0), (0, 1)]
    assert generate(model, tok, prefixes, queries, pairs, "cpu", 8, [], 4096, progress=False)[0] == ""
    got = generate(model, tok, prefixes, queries, pairs, "cpu", 8, [], 4096, progress=False, min_new_tokens=3)
    for text, (p, q) in zip(got, pairs):
        ids = torch.tensor([prefixes[p] + queries[q]])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=8,
                             min_new_tokens=3, pad_token_id=tok.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        assert len(new) >= 3 and not set(new[:3]) & eos_ids(model, tok)
        assert text == decode(tok, [t for t in new if t not in eos_ids(model, tok)])
    assert got[0] != ""
