"""Text embeddings for the similarity, diversity and vote-k selectors.

An embedding is the mean over a text's tokens of an encoder's last hidden state: by default
the evaluated model's decoder (after its final norm, without the LM head), or any local
encoder directory (a sentence-embedding model) loaded with transformers' AutoModel.

Candidates are embedded from their input alone, rendered with the task's query template:
selection happens before annotation in active learning, and a test query, whose answer is
unknown, is embedded the same way from its query text. No label or answer enters either.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from demoscope.lm.models import backbone
from demoscope.data.records import Record
from demoscope.data.templates import Template
from demoscope.lm.tokens import length_batches, pad_batch


def candidate_texts(template: Template, candidates: pl.DataFrame) -> list[str]:
    """Each candidate's input in the query template (its answer left out)."""
    return [template.query_text(Record(id="", input=text, answer="")) for text in candidates["input"]]


def load_encoder(embedding: str, model_dir: str, device: str, dtype: str):
    """(encoder returning `last_hidden_state`, tokenizer, device) for `embedding`: `model`
    (the evaluated model's decoder) or a local encoder directory."""
    from transformers import AutoModel, AutoTokenizer

    from demoscope.lm import models

    if embedding == "model":
        model, tokenizer, device = models.load(model_dir, device, dtype)
        return backbone(model), tokenizer, device
    device = models.resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(embedding)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    encoder = AutoModel.from_pretrained(embedding, dtype=models.resolve_dtype(dtype, device)).to(device).eval()
    return encoder, tokenizer, device


@torch.inference_mode()
def mean_pooled(encoder, tokenizer, texts: list[str], device: str, batch_tokens: int = 2048) -> np.ndarray:
    """(texts, hidden) mean of the last hidden state over each text's tokens (special tokens
    included, as the tokenizer adds them). Batches are right-padded and masked, so a text's
    vector does not depend on its batch."""
    ids = [tokenizer(text).input_ids for text in texts]
    if any(len(seq) == 0 for seq in ids):
        raise ValueError("embedding: a text encodes to no tokens")
    out: list[np.ndarray | None] = [None] * len(ids)
    for rows in length_batches([len(seq) for seq in ids], batch_tokens):
        batch, mask = pad_batch([ids[i] for i in rows], tokenizer.pad_token_id, left=False)
        hidden = encoder(input_ids=batch.to(device), attention_mask=mask.to(device)).last_hidden_state.float().cpu()
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        for row, i in enumerate(rows):
            out[i] = pooled[row].numpy()
    return np.stack(out)


def embedding_table(cand_ids, cand_vectors: np.ndarray, query_ids, query_vectors: np.ndarray) -> pl.DataFrame:
    """`set` (candidate | test), `id`, `embedding` (float32 list)."""
    vectors = np.concatenate([cand_vectors, query_vectors]).astype(np.float32)
    return pl.DataFrame(
        {
            "set": ["candidate"] * len(cand_ids) + ["test"] * len(query_ids),
            "id": [int(i) for i in cand_ids] + [int(i) for i in query_ids],
            "embedding": [row.tolist() for row in vectors],
        },
        schema={"set": pl.String, "id": pl.Int64, "embedding": pl.List(pl.Float32)},
    )
