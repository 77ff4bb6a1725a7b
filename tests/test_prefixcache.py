"""The prefix-cache runner against a plain forward of each whole prompt, and its monopoly on KV-cache copies."""

import re
from pathlib import Path

import pytest
import torch

from demoscope.lm import models
from demoscope.lm.prefixcache import run_prefix
from demoscope.lm.tokens import pad_batch

PACKAGE = Path(__file__).resolve().parents[1] / "workflow"

# Copying, narrowing or repeating a KV cache, or handing one to a forward.
CACHE_OPS = re.compile(r"batch_select_indices|batch_repeat_interleave|reorder_cache|deepcopy\([^)]*cache|\bcache=")


def test_only_the_runner_copies_or_repeats_a_kv_cache():
    found = sorted(
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in PACKAGE.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if CACHE_OPS.search(line)
    )
    assert found, "the scan must find the runner's own cache operations"
    assert {where.split(":")[0] for where in found} == {"demoscope/lm/prefixcache.py"}, found


def whole(body, ids: list[int]) -> torch.Tensor:
    """Hidden states of one prompt alone, no padding, no cache."""
    return body(input_ids=torch.tensor([ids])).last_hidden_state[0]


@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_qwen2", "tiny_gemma3"])
def test_cached_prefix_continuations_equal_whole_prompts(arch, request):
    model, tok, _ = models.load(request.getfixturevalue(arch), "cpu", "float32")
    body = models.backbone(model)
    enc = lambda text: tok(text, add_special_tokens=False).input_ids  # noqa: E731
    prefixes = [tok("Review: good film").input_ids, enc("sun"), tok("Question: which gas water rock?").input_ids]
    rows = [2, 0, 0, 1]  # a prefix may serve several rows, in any order
    queries = [enc(" dull plot"), enc(" heat"), enc(" what light sound music"), enc(" love")]
    tails = [enc(" a b"), enc(" positive")]
    with torch.inference_mode():
        _, cached = run_prefix(body, prefixes, tok.pad_token_id, "cpu")
        # `keep`: the prefix cache stays usable for a second selection below.
        for left in (False, True):
            q_ids, q_mask = pad_batch(queries, tok.pad_token_id, left=left)
            out, after = cached.select(rows, keep=True).forward(body, q_ids, q_mask, left=left, use_cache=True)
            o_ids, o_mask = pad_batch([t for _ in rows for t in tails], tok.pad_token_id, left=False)
            o_out, _ = after.repeat(len(tails)).forward(body, o_ids, o_mask, left=False, use_cache=False)
            for i, (p, q) in enumerate(zip(rows, queries)):
                real = q_mask[i].bool()
                expect = whole(body, prefixes[p] + q)[len(prefixes[p]):]
                torch.testing.assert_close(out.last_hidden_state[i][real], expect, atol=2e-5, rtol=1e-4)
                for k, tail in enumerate(tails):
                    got = o_out.last_hidden_state[i * len(tails) + k][: len(tail)]
                    torch.testing.assert_close(got, whole(body, prefixes[p] + q + tail)[-len(tail):], atol=2e-5, rtol=1e-4)


def test_empty_prefixes_cache_nothing(tiny_llama):
    model, tok, _ = models.load(tiny_llama, "cpu", "float32")
    body = models.backbone(model)
    query = tok("good film").input_ids
    with torch.inference_mode():
        skipped, cached = run_prefix(body, [[], []], tok.pad_token_id, "cpu", skip_empty=True)
        assert skipped is None and cached.cache is None and cached.mask.shape == (2, 0)
        ids, mask = pad_batch([query, query[:2]], tok.pad_token_id, left=True)
        out, after = cached.forward(body, ids, mask, left=True, use_cache=True)
        torch.testing.assert_close(out.last_hidden_state[0], whole(body, query), atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(out.last_hidden_state[1, -2:], whole(body, query[:2]), atol=2e-5, rtol=1e-4)
        assert after.mask.tolist() == mask.tolist()
