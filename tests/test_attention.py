"""The attention lens against each prompt run alone with output_attentions (eager attention)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from demoscope.lm import models
from demoscope.lenses.attention import best_head, calibration_pairs, candidate_features, encode_prompt
from demoscope.data.templates import Template

TEMPLATE = Template.from_config({"instruction": "Classify.", "demonstration": "{input} {answer}", "query": "{input}"})
CANDIDATES = pl.DataFrame(
    {
        "cand_id": [0, 1, 2],
        "answer": ["negative", "positive", "negative"],
        "demonstration": ["Review: bad \nSentiment: negative", "Review: great film music \nSentiment: positive",
                          "Review: dull \nSentiment: negative"],
    }
)
PROBES = pl.DataFrame({"text": ["Review: love \nSentiment:", "Review: awful plot \nSentiment:"],
                       "label": ["positive", "negative"]})
CAL_DEMOS = pl.DataFrame({"text": ["Review: fine \nSentiment: positive", "Review: hate \nSentiment: negative"],
                          "answer": ["positive", "negative"], "label": ["positive", "negative"]})
CAL_QUERIES = pl.DataFrame({"text": ["Review: bright story \nSentiment:", "Review: dull actor \nSentiment:",
                                     "Review: good \nSentiment:"], "label": ["positive", "negative", "positive"]})


@pytest.fixture(scope="module", params=["tiny_llama", "tiny_qwen2", "tiny_gemma3"])
def eager(request):
    torch.set_num_threads(1)
    model, tok, _ = models.load(request.getfixturevalue(request.param), "cpu", "float32")
    model.set_attn_implementation("eager")
    return model, tok


def direct(model, tok, demo: str, answer: str, query: str):
    """Spans from token counts of the prompt's pieces; weights from output_attentions of the
    prompt alone; the affinity from hidden_states, the layer's input norm and q/k projections."""
    head = "Classify.\n\n"
    n_head = len(tok(head).input_ids)
    n_prefix = len(tok(head + demo).input_ids)
    n_before_answer = len(tok(head + demo[: demo.rfind(answer)].rstrip(" ")).input_ids)
    ids = tok(head + demo).input_ids + tok("\n\n" + query, add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
    rows = torch.stack([a[0, :, -1] for a in out.attentions])  # layers x heads x keys
    demo_span, label_span = list(range(n_head, n_prefix)), list(range(n_before_answer, n_prefix))
    return ids, demo_span, label_span, rows[..., demo_span].sum(-1).numpy(), rows[..., label_span].sum(-1).numpy(), out


def test_spans_and_attention_features_equal_output_attentions(eager):
    model, tok = eager
    (layer, head, _) = best_head(model, tok, TEMPLATE, CAL_DEMOS, CAL_QUERIES, True, "cpu", batch_tokens=64)
    per_layer, at_head = candidate_features(model, tok, TEMPLATE, CANDIDATES, PROBES, (layer, head), "cpu",
                                            batch_tokens=50)
    assert per_layer.height == 3 * 3 and at_head.height == 3
    cfg = model.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    for c, demo, answer in CANDIDATES.select("cand_id", "demonstration", "answer").iter_rows():
        demo_mass, label_mass, affinity = [], [], []
        for query in PROBES["text"]:
            ids, demo_span, label_span, to_demo, to_label, out = direct(model, tok, demo, answer, query)
            got_ids, got_demo, got_label = encode_prompt(tok, TEMPLATE, demo, answer, query)
            assert (got_ids, got_demo, got_label) == (ids, demo_span, label_span)
            assert tok.decode([ids[t] for t in label_span]).strip() == answer
            demo_mass.append(to_demo)
            label_mass.append(to_label)
            attn = model.model.layers[layer]
            with torch.no_grad():
                x = attn.input_layernorm(out.hidden_states[layer][0])
                q = attn.self_attn.q_proj(x[-1]).view(-1, head_dim)[head]
                k = attn.self_attn.k_proj(x[label_span]).view(len(label_span), -1, head_dim)[:, head // 2]
            affinity.append(torch.nn.functional.cosine_similarity(q[None], k, dim=-1).mean().item())
        rows = per_layer.filter(pl.col("cand_id") == c).sort("layer")
        np.testing.assert_allclose(rows["attn_demo"].to_numpy(), np.mean(demo_mass, axis=0).mean(-1), rtol=1e-4)
        np.testing.assert_allclose(rows["attn_label"].to_numpy(), np.mean(label_mass, axis=0).mean(-1), rtol=1e-4)
        row = at_head.filter(pl.col("cand_id") == c).row(0, named=True)
        assert (row["layer"], row["head"]) == (layer, head)
        assert row["attn_label_head"] == pytest.approx(np.mean(label_mass, axis=0)[layer, head], rel=1e-4)
        assert row["kato_affinity"] == pytest.approx(np.mean(affinity), rel=1e-4, abs=1e-6)


def test_best_head_is_the_largest_mean_label_attention_on_calibration_pairs_only(eager):
    model, tok = eager
    pairs = calibration_pairs(CAL_DEMOS, CAL_QUERIES, by_label=True)
    assert pairs == [(0, 0), (0, 2), (1, 1)]
    layer, head, mass = best_head(model, tok, TEMPLATE, CAL_DEMOS, CAL_QUERIES, True, "cpu", batch_tokens=64)
    expected = np.mean([direct(model, tok, CAL_DEMOS["text"][d], CAL_DEMOS["answer"][d], CAL_QUERIES["text"][q])[4]
                        for d, q in pairs], axis=0)
    np.testing.assert_allclose(mass, expected, rtol=1e-4)
    assert (layer, head) == np.unravel_index(np.argmax(expected), expected.shape)
    # Deterministic, and a function of the calibration set alone.
    assert best_head(model, tok, TEMPLATE, CAL_DEMOS, CAL_QUERIES, True, "cpu", batch_tokens=16)[:2] == (layer, head)
