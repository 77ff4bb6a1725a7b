"""Run candidates through the model under a masking strategy and stream each dumped site's activations to its store."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from demoscope import __version__
from demoscope.activations import masks, store
from demoscope.activations.capture import capture_sites
from demoscope.lm.models import backbone, decoder_layers
from demoscope.lm.prefixcache import run_padded


@torch.inference_mode()
def dump_activations(
    model,
    tokenizer,
    texts: list[str],
    out_path: str | Path | list[str | Path],
    site: str | list[str],
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
    recorded as the store's `layers` attribute) for every kept token. `site` may be a list of
    sites, with `out_path` the list of their stores: one forward then fills them all.

    A dump killed part-way leaves its partial store; running it again with the
    same inputs and settings continues after the last fully written batch.

    `context` carries what a strategy needs beyond the texts: `instruction` and
    `separator` for `instruction`; `queries`, `instruction` and `separator` for `query`.
    """
    sites = [site] if isinstance(site, str) else list(site)
    out_paths = [out_path] if isinstance(out_path, (str, Path)) else list(out_path)
    if len(out_paths) != len(sites):
        raise ValueError(f"{len(sites)} sites {sites} but {len(out_paths)} store paths")
    plan = masks.plan(mask, texts, tokenizer, batch_tokens, dtype=model.dtype, **context)
    chosen = list(range(len(decoder_layers(model)))) if layers is None else [int(layer) for layer in layers]
    n_layers, hidden = len(chosen), model.config.hidden_size
    opened = [
        store.create(
            path,
            [len(s) for s in plan.segments],
            n_layers,
            hidden,
            store_dtype,
            chunk_tokens,
            {
                "site": one_site,
                "mask": mask,
                "dtype": store_dtype,
                "package_version": __version__,
                "segments_per_candidate": plan.segments_per_candidate,
                "batch_tokens": batch_tokens,  # batching changes float rounding: part of the fingerprint
                **({} if layers is None else {"layers": chosen}),
                **(attrs or {}),
            },
        )
        for one_site, path in zip(sites, out_paths)
    ]
    roots, dones = [root for root, _ in opened], [done for _, done in opened]
    offsets = roots[0]["offsets"][:]
    body = backbone(model)
    # A killed dump may leave its stores at different batches: redo from the earliest.
    done = min(dones)
    todo = [batch for batch in plan.batches if batch.last > done]
    for path, resumed in zip(out_paths, dones):
        if resumed:
            print(f"resuming {path}: {resumed} of {len(plan.segments)} segments already written", file=sys.stderr)

    def write(start: int, stop: int, blocks: list[np.ndarray], ids: np.ndarray, segments_done: int) -> None:
        for root, block, resumed in zip(roots, blocks, dones):
            if segments_done <= resumed:
                continue  # this store already holds the batch
            root["activations"][:, start:stop, :] = block
            root["token_ids"][start:stop] = ids
            store.mark_progress(root, segments_done)  # only after the batch's chunks are on disk

    # One writer thread: the next batch runs while the last one is compressed and written
    # (zstd releases the GIL). At most one batch waits, so memory stays bounded.
    with capture_sites(model, sites, None if layers is None else chosen) as captured, ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        for batch in tqdm(todo, desc=f"dump {mask}/{'+'.join(sites)}", file=sys.stderr):
            if batch.prefix is None:
                body(
                    input_ids=batch.input_ids.to(device),
                    attention_mask=batch.attention_mask.to(device),
                    position_ids=batch.position_ids.to(device),
                    use_cache=False,
                )
            else:  # the query mask: the demonstrations run once, their cache repeated per query
                prefix = batch.prefix
                _, cached = run_padded(
                    body, prefix["input_ids"], prefix["attention_mask"], prefix["position_ids"], device, use_cache=True
                )
                cached.repeat(prefix["repeat"]).forward_laid_out(
                    body, batch.input_ids, batch.attention_mask, batch.position_ids, use_cache=False
                )
            keep = batch.keep.to(device)
            blocks = [torch.stack([by_layer[layer][keep] for layer in chosen]).float().cpu().numpy() for by_layer in captured.values()]
            for block, path in zip(blocks, out_paths):
                check_range(block, store_dtype, chosen, path)
            blocks = [block.astype(store_dtype, copy=False) for block in blocks]
            ids = batch.input_ids[batch.keep].numpy().astype(np.int32)
            if pending is not None:
                pending.result()  # re-raises a failed write here, before more work is queued
            start, stop = int(offsets[batch.first]), int(offsets[batch.last])
            pending = writer.submit(write, start, stop, blocks, ids, batch.last)
        if pending is not None:
            pending.result()
    for path in out_paths:
        store.finalize(path)


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
