"""Run each candidate demonstration through the model and stream one site's activations to a store."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import __version__, store
from .capture import capture
from .models import backbone, decoder_layers
from .tokens import encode_text


def length_batches(lengths: list[int], batch_tokens: int) -> list[tuple[int, int]]:
    """Consecutive ranges whose padded size (count x longest) stays within batch_tokens.

    Consecutive, not length-sorted, so every batch is one contiguous write.
    """
    batches, first, longest = [], 0, 0
    for i, n in enumerate(lengths):
        longest_if = max(longest, n)
        if i > first and longest_if * (i - first + 1) > batch_tokens:
            batches.append((first, i))
            first, longest_if = i, n
        longest = longest_if
    if lengths:
        batches.append((first, len(lengths)))
    return batches


@torch.inference_mode()
def dump_activations(
    model,
    tokenizer,
    texts: list[str],
    out_path: str | Path,
    site: str,
    device: str,
    store_dtype: str,
    batch_tokens: int = 4096,
    chunk_tokens: int = 256,
    attrs: dict | None = None,
) -> None:
    """Write the `site` output of every decoder layer for every token of every text."""
    ids = [encode_text(tokenizer, t, first=True) for t in texts]
    lengths = [len(x) for x in ids]
    n_layers, hidden = len(decoder_layers(model)), model.config.hidden_size
    root = store.create(
        out_path,
        lengths,
        n_layers,
        hidden,
        store_dtype,
        chunk_tokens,
        {"site": site, "dtype": store_dtype, "package_version": __version__, **(attrs or {})},
    )
    acts, token_ids = root["activations"], root["token_ids"]
    offsets = root["offsets"][:]
    pad = tokenizer.pad_token_id
    body = backbone(model)
    with capture(model, site) as captured:
        for first, last in tqdm(length_batches(lengths, batch_tokens), desc=f"dump {site}", file=sys.stderr):
            batch = ids[first:last]
            width = max(len(x) for x in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, seq in enumerate(batch):
                input_ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            body(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False)
            keep = mask.bool().to(device)
            block = torch.stack([captured[layer][keep] for layer in range(n_layers)])
            start, stop = int(offsets[first]), int(offsets[last])
            acts[:, start:stop, :] = block.float().cpu().numpy().astype(store_dtype, copy=False)
            token_ids[start:stop] = input_ids[mask.bool()].numpy().astype(np.int32)
    store.finalize(out_path)


def resolve_store_dtype(store_dtype: str, device: str) -> str:
    """`auto`: float16 on a GPU (half the disk), float32 on the CPU."""
    if store_dtype == "auto":
        return "float16" if device.startswith("cuda") else "float32"
    return store_dtype
