"""Run candidates through the model under a masking strategy and stream one site's activations to a store."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import __version__, masks, store
from .capture import capture
from .models import backbone, decoder_layers


@torch.inference_mode()
def dump_activations(
    model,
    tokenizer,
    texts: list[str],
    out_path: str | Path,
    site: str,
    device: str,
    store_dtype: str,
    mask: str = "causal",
    batch_tokens: int = 4096,
    chunk_tokens: int = 256,
    attrs: dict | None = None,
    layers: list[int] | None = None,
    **context,
) -> None:
    """Write the `site` output of every decoder layer (or of `layers` only, in that order,
    recorded as the store's `layers` attribute) for every kept token.

    A dump killed part-way leaves its partial store; running it again with the
    same inputs and settings continues after the last fully written batch.

    `context` carries what a strategy needs beyond the texts: `instruction` and
    `separator` for `instruction`; `queries`, `instruction` and `separator` for `query`.
    """
    plan = masks.plan(mask, texts, tokenizer, batch_tokens, dtype=model.dtype, **context)
    chosen = list(range(len(decoder_layers(model)))) if layers is None else [int(layer) for layer in layers]
    n_layers, hidden = len(chosen), model.config.hidden_size
    root, done = store.create(
        out_path,
        [len(s) for s in plan.segments],
        n_layers,
        hidden,
        store_dtype,
        chunk_tokens,
        {
            "site": site,
            "mask": mask,
            "dtype": store_dtype,
            "package_version": __version__,
            "segments_per_candidate": plan.segments_per_candidate,
            "batch_tokens": batch_tokens,  # batching changes float rounding: part of the fingerprint
            **({} if layers is None else {"layers": chosen}),
            **(attrs or {}),
        },
    )
    acts, token_ids = root["activations"], root["token_ids"]
    offsets = root["offsets"][:]
    body = backbone(model)
    todo = [batch for batch in plan.batches if batch.last > done]
    if done:
        print(f"resuming {out_path}: {done} of {len(plan.segments)} segments already written", file=sys.stderr)

    def write(start: int, stop: int, block: np.ndarray, ids: np.ndarray, segments_done: int) -> None:
        acts[:, start:stop, :] = block
        token_ids[start:stop] = ids
        store.mark_progress(root, segments_done)  # only after the batch's chunks are on disk

    # One writer thread: the next batch runs while the last one is compressed and written
    # (zstd releases the GIL). At most one batch waits, so memory stays bounded.
    with capture(model, site, None if layers is None else chosen) as captured, ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        for batch in tqdm(todo, desc=f"dump {mask}/{site}", file=sys.stderr):
            cache = None
            if batch.prefix is not None:
                prefix = {k: v.to(device) for k, v in batch.prefix.items() if k != "repeat"}
                cache = body(**prefix, use_cache=True).cache
                cache.batch_repeat_interleave(batch.prefix["repeat"])
            body(
                input_ids=batch.input_ids.to(device),
                attention_mask=batch.attention_mask.to(device),
                position_ids=batch.position_ids.to(device),
                cache=cache,
                use_cache=False,
            )
            keep = batch.keep.to(device)
            block = torch.stack([captured[layer][keep] for layer in chosen]).float().cpu().numpy()
            check_range(block, store_dtype, chosen, out_path)
            block = block.astype(store_dtype, copy=False)
            ids = batch.input_ids[batch.keep].numpy().astype(np.int32)
            if pending is not None:
                pending.result()  # re-raises a failed write here, before more work is queued
            start, stop = int(offsets[batch.first]), int(offsets[batch.last])
            pending = writer.submit(write, start, stop, block, ids, batch.last)
        if pending is not None:
            pending.result()
    store.finalize(out_path)


def check_range(block: np.ndarray, store_dtype: str, layers: list[int], out_path) -> None:
    """Refuse a value the store's dtype cannot hold: float16 would write it as inf, and every
    moment and massive-activation feature of its segment would be inf or NaN without a word."""
    if np.dtype(store_dtype) != np.float16 or block.size == 0:
        return
    limit = float(np.finfo(np.float16).max)
    peaks = np.abs(block).reshape(len(block), -1).max(axis=1)
    over = np.flatnonzero(peaks > limit)
    if len(over):
        where = ", ".join(f"layer {layers[i]}: {peaks[i]:.6g}" for i in over[:5])
        raise store.StoreError(
            f"{out_path}: activations beyond float16's range ({limit:.0f}) at {where}; a float16 store would hold "
            "inf there. Set compute.store_dtype: float32."
        )


def resolve_store_dtype(store_dtype: str, device: str) -> str:
    """`auto`: float16 on a GPU (half the disk), float32 on the CPU."""
    if store_dtype == "auto":
        return "float16" if device.startswith("cuda") else "float32"
    return store_dtype
