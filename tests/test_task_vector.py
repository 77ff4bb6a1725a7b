"""The task-vector lens against a direct forward of each prompt alone."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from demoscope.lm import models
from demoscope.data.records import Record
from demoscope.lenses.task_vector import draw_pool, features, last_token_states, prompt_text
from demoscope.data.templates import Template

TEMPLATE = Template.from_config({"instruction": "Classify.", "demonstration": "{input} {answer}", "query": "{input}"})
DEMOS = ["Review: bad \nSentiment: negative", "Review: great film music \nSentiment: positive",
         "Review: dull \nSentiment: negative", "Review: love the plot and actor \nSentiment: positive"]


@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_qwen2", "tiny_gemma3"])
def test_last_token_states_equal_a_direct_forward(arch, request):
    torch.set_num_threads(1)
    model, tok, _ = models.load(request.getfixturevalue(arch), "cpu", "float32")
    # A small token budget: several batches of right-padded rows of different lengths.
    got = last_token_states(model, tok, TEMPLATE, DEMOS, "cpu", batch_tokens=40)
    assert got.shape == (4, 3, 32)
    for i, demo in enumerate(DEMOS):
        ids = tok(prompt_text(TEMPLATE, demo)).input_ids
        assert tok.decode(ids[-1:]).endswith("\n")  # the separator's last token
        with torch.no_grad():
            hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
        # hidden_states[l + 1] is decoder layer l's output; the last one has the final norm applied.
        for layer in range(2):
            np.testing.assert_allclose(got[i, layer], hidden[layer + 1][0, -1].numpy(), rtol=1e-4, atol=1e-5)
        with torch.no_grad():
            normed = model.model.norm(torch.tensor(got[i, 2]))
        np.testing.assert_allclose(normed.numpy(), hidden[3][0, -1].numpy(), rtol=1e-4, atol=1e-4)


def test_features_are_cosine_to_the_pool_mean_and_norm():
    rng = np.random.default_rng(0)
    cands, pool = rng.normal(size=(3, 2, 5)), rng.normal(size=(6, 2, 5))
    table = features([10, 11, 12], cands, pool)
    assert table.columns == ["cand_id", "layer", "tv_cosine", "tv_norm"] and table.height == 6
    mean = pool.mean(axis=0)
    for row in table.iter_rows(named=True):
        h = cands[row["cand_id"] - 10, row["layer"]]
        m = mean[row["layer"]]
        assert row["tv_cosine"] == pytest.approx(h @ m / np.linalg.norm(h) / np.linalg.norm(m))
        assert row["tv_norm"] == pytest.approx(np.linalg.norm(h))


def test_pool_excludes_candidates_and_is_label_balanced():
    train = [Record(id=f"r{i}", input=f"text {i}", answer=["neg", "pos"][i % 2], options=("neg", "pos"),
                    label=["neg", "pos"][i % 2]) for i in range(40)]
    candidates = {f"r{i}" for i in range(0, 40, 3)}  # 14 of 40: 13 of each label remain
    pool = draw_pool(train, candidates, 12, 0, Template.from_config(None))
    assert pool.height == 12 and not set(pool["record_id"]) & candidates
    assert sorted(pool["label"].value_counts()["count"].to_list()) == [6, 6]
    assert pool.equals(draw_pool(train, candidates, 12, 0, Template.from_config(None)))
    with pytest.raises(ValueError, match="task_vector.pool"):
        draw_pool(train, candidates, 40, 0, Template.from_config(None))
    assert isinstance(pool, pl.DataFrame)
