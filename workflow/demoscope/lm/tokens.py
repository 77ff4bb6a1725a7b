"""Tokenisation of a text that stands alone, and padding.

`encode_text` serves texts that are a whole sequence (a demonstration under the
`causal`, `bidirectional` and `packed` masks, a token count): the first segment of a
sequence gets the tokenizer's special tokens (a BOS where the model uses one). Anything
that places text inside a prompt goes through `promptbuilder`, which tokenises the
prompt as one text, so dumped tokens and scored prompts agree.
"""

from __future__ import annotations

import torch


def encode_text(tokenizer, text: str, first: bool) -> list[int]:
    return tokenizer(text, add_special_tokens=first).input_ids


def pad_batch(seqs: list[list[int]], pad: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of a batch, padded on the left or the right."""
    width = max(max(len(s) for s in seqs), 1)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if seq:
            where = slice(width - len(seq), width) if left else slice(0, len(seq))
            ids[row, where] = torch.tensor(seq)
            mask[row, where] = 1
    return ids, mask


def length_batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    """Indices of sequences grouped into batches, shortest first, each holding as many rows as
    fit `batch_tokens` padded tokens (rows x the batch's longest length; at least one row)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, start = [], 0
    while start < len(order):
        # Rows sorted by length: the batch's width is its last row's length.
        stop = start + 1
        while stop < len(order) and (stop - start + 1) * lengths[order[stop]] <= batch_tokens:
            stop += 1
        batches.append(order[start:stop])
        start = stop
    return batches
