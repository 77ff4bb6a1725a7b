"""Each masking strategy stores the tokens it promises, computed the way it promises."""

import numpy as np
import pytest
import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from demoscope.lm import models
from demoscope.activations import store
from demoscope.activations.capture import capture
from demoscope.activations.dump import dump_activations

from conftest import build_tiny_model

DEMOS = ["Review: good film \nSentiment: positive", "Review: dull plot scene \nSentiment: negative",
         "Question: which rock?\nAnswer: gas", "Review: love \nSentiment: positive"]
QUERIES = ["Review: hate music \nSentiment:", "Question: what heat?\nAnswer:"]


def dump(model, tok, tmp_path, mask, texts=DEMOS, site="mlp_out", **context):
    path = tmp_path / f"{mask}-{len(list(tmp_path.iterdir()))}.zarr"
    dump_activations(model, tok, texts, path, site, "cpu", "float32", mask=mask, batch_tokens=40,
                     chunk_tokens=8, **context)
    return store.open_store(path)


@pytest.fixture(scope="module")
def llama(tiny_llama):
    return models.load(tiny_llama, "cpu", "float32")[:2]


def test_packed_equals_causal(llama, tmp_path):
    model, tok = llama
    causal, packed = dump(model, tok, tmp_path, "causal"), dump(model, tok, tmp_path, "packed")
    np.testing.assert_array_equal(causal.offsets, packed.offsets)
    diff = np.abs(causal.root["activations"][:] - packed.root["activations"][:]).max()
    assert diff < 1e-4


def test_instruction_keeps_exactly_the_demonstration_tokens(llama, tmp_path):
    model, tok = llama
    s = dump(model, tok, tmp_path, "instruction", instruction="Classify each review.", separator="\n\n")
    ids = s.root["token_ids"][:]
    for i, demo in enumerate(DEMOS):
        assert ids[s.offsets[i]: s.offsets[i + 1]].tolist() == tok(demo, add_special_tokens=False).input_ids
    # ...and they are computed after the instruction: equal to that position range of one unpadded run.
    head = tok("Classify each review.\n\n").input_ids
    own = tok(DEMOS[1], add_special_tokens=False).input_ids
    with capture(model, "mlp_out") as captured, torch.no_grad():
        model.model(input_ids=torch.tensor([head + own]))
    np.testing.assert_allclose(s.candidate(2, 1), captured[2][0, len(head):].numpy(), atol=1e-5)


def test_instruction_without_text_is_refused(llama, tmp_path):
    model, tok = llama
    with pytest.raises(ValueError, match="needs the task's template.instruction"):
        dump(model, tok, tmp_path, "instruction", instruction="", separator="\n\n")


def test_query_keeps_the_query_tokens_and_sees_the_demonstration(llama, tmp_path):
    model, tok = llama
    s = dump(model, tok, tmp_path, "query", queries=QUERIES, separator="\n\n", instruction="Classify each review.")
    assert s.n_candidates == len(DEMOS) * len(QUERIES) and s.attrs["segments_per_candidate"] == 2
    ids = s.root["token_ids"][:]
    for seg in range(s.n_candidates):
        query = QUERIES[seg % len(QUERIES)]
        # The query's own tokens: not the separator before it.
        assert ids[s.offsets[seg]: s.offsets[seg + 1]].tolist() == tok(query, add_special_tokens=False).input_ids
    # Segment (candidate 2, query 1) equals the query positions of the unpadded 1-shot prompt,
    # instruction included, tokenised as one text.
    prompt = tok("Classify each review.\n\n" + DEMOS[2] + "\n\n" + QUERIES[1]).input_ids
    n_query = len(tok(QUERIES[1], add_special_tokens=False).input_ids)
    with capture(model, "mlp_out") as captured, torch.no_grad():
        model.model(input_ids=torch.tensor([prompt]))
    np.testing.assert_allclose(s.candidate(1, 2 * 2 + 1), captured[1][0, -n_query:].numpy(), atol=1e-5)
    # The same query after a different demonstration gives different activations.
    assert np.abs(s.candidate(1, 0 * 2 + 1) - s.candidate(1, 2 * 2 + 1)).max() > 1e-4


def manual_full_attention_mlp(model, ids: torch.Tensor) -> torch.Tensor:
    """A 1-layer Llama written out by hand, with no mask at all: every token sees every token."""
    layer = model.model.layers[0]
    attn = layer.self_attn
    x = model.model.embed_tokens(ids)
    h = layer.input_layernorm(x)
    b, t, _ = h.shape
    q, k, v = (proj(h).view(b, t, -1, attn.head_dim).transpose(1, 2) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
    cos, sin = model.model.rotary_emb(v, torch.arange(t)[None])
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    weights = torch.softmax(q @ k.transpose(-1, -2) / attn.head_dim**0.5, dim=-1)
    x = x + attn.o_proj((weights @ v).transpose(1, 2).reshape(b, t, -1))
    return layer.mlp(layer.post_attention_layernorm(x))


def test_bidirectional_is_full_attention_and_differs_from_causal(tmp_path):
    model, tok, _ = models.load(build_tiny_model(tmp_path / "one-layer", "llama", layers=1), "cpu", "float32")
    bi = dump(model, tok, tmp_path, "bidirectional")
    causal = dump(model, tok, tmp_path, "causal")
    for i, demo in enumerate(DEMOS):
        with torch.no_grad():
            manual = manual_full_attention_mlp(model, torch.tensor([tok(demo).input_ids]))[0].numpy()
        np.testing.assert_allclose(bi.candidate(0, i), manual, atol=1e-5)
        # The last token sees everything under both masks; earlier tokens do not.
        assert np.abs(bi.candidate(0, i)[:-1] - causal.candidate(0, i)[:-1]).max() > 1e-3
