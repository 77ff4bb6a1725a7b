"""Quality scored in shards of candidates equals quality scored in one job."""

import numpy as np
import polars as pl
import pytest

from demoscope.config import semantic_errors
from demoscope.data.templates import Template
from demoscope.lm import models
from demoscope.quality.oneshot import quality_tables
from demoscope.quality.shards import merge_shards, shard_rows


@pytest.mark.parametrize("rows, shards", [(7, 1), (7, 2), (7, 3), (300, 2), (5, 5)])
def test_shards_cover_every_row_once_in_order(rows, shards):
    table = pl.DataFrame({"cand_id": np.arange(rows)})
    parts = [shard_rows(table, shard, shards) for shard in range(shards)]
    assert all(part.height >= 1 for part in parts)
    assert max(p.height for p in parts) - min(p.height for p in parts) <= 1
    assert merge_shards(parts)["cand_id"].to_list() == list(range(rows))


def test_more_shards_than_candidates_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="compute.quality_shards"):
        shard_rows(pl.DataFrame({"cand_id": [0, 1]}), 0, 3)
    config = {"tasks": {"sst2": {"sizes": {"candidates": 2}}}, "compute": {"quality_shards": 3}}
    assert any("compute.quality_shards" in e and "tasks.sst2" in e for e in semantic_errors(config))


def test_sharded_quality_tables_equal_one_job(tiny_llama):
    model, tok, _ = models.load(tiny_llama, "cpu", "float32")
    template = Template.from_config({"demonstration": "{input} {answer}", "query": "{input}"})
    words = ["bad", "great", "dull", "fine", "awful"]
    candidates = pl.DataFrame({
        "cand_id": list(range(5)), "label": ["negative", "positive"] * 2 + ["negative"],
        "demonstration": [f"Review: {w} \nSentiment: {lab}" for w, lab in
                          zip(words, ["negative", "positive"] * 2 + ["negative"])],
    })
    queries = pl.DataFrame({"query_id": [0, 1, 2], "query": [f"Review: {w} \nSentiment:" for w in ("love", "hate", "meh")],
                            "options": [["negative", "positive"]] * 3, "gold_index": [1, 0, 0]})
    whole = quality_tables(model, tok, template, candidates, queries, "cpu", 128, progress=False)
    parts = [quality_tables(model, tok, template, shard_rows(candidates, s, 2), queries, "cpu", 128, progress=False)
             for s in range(2)]
    for i in range(2):
        merged = merge_shards([part[i] for part in parts])
        assert merged.columns == whole[i].columns and merged.height == whole[i].height
        for column in merged.columns:
            got, want = merged[column].to_numpy(), whole[i][column].to_numpy()
            if got.dtype.kind == "f":
                np.testing.assert_allclose(got, want, atol=1e-5)
            else:
                assert got.tolist() == want.tolist(), column
