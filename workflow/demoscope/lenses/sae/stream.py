"""Tokens of one activation-store layer for an SAE: shuffled training batches, ordered blocks, moments.

Training streams shuffled token blocks from an activation store (never the whole store),
reproducibly from a seed; measurements read the tokens in order, a block at a time.
"""

from __future__ import annotations

import numpy as np


def layer_index(store, layer: int) -> int:
    """Where model layer `layer` sits in a store: stores dumped for some layers only record
    them in their `layers` attribute; full stores hold every layer at its own index."""
    layers = store.attrs.get("layers")
    if layers is None:
        if not 0 <= layer < store.n_layers:
            raise ValueError(f"{store.path}: layer {layer} is outside the store's {store.n_layers} layers")
        return layer
    if layer not in layers:
        raise ValueError(f"{store.path}: holds layers {layers}, not layer {layer}")
    return layers.index(layer)


def first_tokens(offsets: np.ndarray) -> np.ndarray:
    """The position of each segment's first token. Where a segment starts its sequence (the
    causal, bidirectional and packed masks) that token is the attention sink, whose massive
    activations (Sun et al. 2024) would otherwise dominate an SAE's loss and its explained
    variance; with a BOS token this is the usual practice of leaving BOS out."""
    offsets = np.asarray(offsets, dtype=np.int64)
    return offsets[:-1][np.diff(offsets) > 0]


def kept_rows(start: int, stop: int, skip: np.ndarray | None) -> np.ndarray | slice:
    """Rows of tokens start..stop-1 that are not in the sorted positions `skip`."""
    if skip is None:
        return slice(None)
    keep = np.ones(stop - start, dtype=bool)
    keep[skip[np.searchsorted(skip, start) : np.searchsorted(skip, stop)] - start] = False
    return keep


class TokenStream:
    """Shuffled batches of the tokens first..last-1 of one store layer (less the positions in
    `skip`), read a buffer at a time.

    The token range is cut into units on the store's chunk grid. Epoch e visits the units in a
    permutation drawn from (seed, e); consecutive units fill a buffer of about `buffer_tokens`,
    whose rows are permuted with (seed, e, buffer) and cut into batches of `batch_tokens` (the
    remainder is dropped). Batch b of the whole sequence is thus a function of the seed alone,
    and `batches(start)` reaches batch `start` without reading the buffers before it."""

    def __init__(self, array, layer: int, first: int, last: int, batch_tokens: int, buffer_tokens: int, seed: int,
                 skip: np.ndarray | None = None):
        chunk = array.chunks[1]
        edges = sorted({first, last, *range((first // chunk + 1) * chunk, last, chunk)})
        self.units = list(zip(edges[:-1], edges[1:]))
        self.skip = None if skip is None else np.sort(np.asarray(skip, dtype=np.int64))
        self.sizes = [
            (stop - start) if self.skip is None else int(kept_rows(start, stop, self.skip).sum()) for start, stop in self.units
        ]
        self.tokens = sum(self.sizes)
        if self.tokens < batch_tokens:
            raise ValueError(f"{self.tokens} training tokens are fewer than one batch of {batch_tokens}")
        self.array, self.layer, self.seed = array, layer, seed
        self.batch_tokens, self.buffer_tokens = batch_tokens, max(buffer_tokens, batch_tokens)

    def buffers(self, epoch: int) -> list[list[int]]:
        """The units of each buffer of one epoch."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.units))
        out, current, size = [], [], 0
        for unit in order:
            current.append(int(unit))
            size += self.sizes[unit]
            if size >= self.buffer_tokens:
                out.append(current)
                current, size = [], 0
        if current:
            out.append(current)
        return out

    def read(self, unit: int) -> np.ndarray:
        start, stop = self.units[unit]
        return self.array[self.layer, start:stop, :][kept_rows(start, stop, self.skip)]

    def batches(self, start: int = 0):
        """Yield (step, tokens x d_in float32 array) from step `start` on, forever."""
        step, epoch = 0, 0
        while True:
            for index, units in enumerate(self.buffers(epoch)):
                n_batches = sum(self.sizes[unit] for unit in units) // self.batch_tokens
                if step + n_batches <= start:
                    step += n_batches
                    continue
                rows = np.concatenate([self.read(unit) for unit in units])
                rows = rows[np.random.default_rng([self.seed, epoch, index]).permutation(len(rows))]
                for b in range(n_batches):
                    if step >= start:
                        yield step, rows[b * self.batch_tokens : (b + 1) * self.batch_tokens].astype(np.float32)
                    step += 1
            epoch += 1


def token_blocks(array, layer: int, first: int, last: int, block_tokens: int, skip: np.ndarray | None = None):
    """Tokens first..last-1 of one store layer (less the positions in `skip`), in order, at
    most block_tokens at a time."""
    for start in range(first, last, block_tokens):
        stop = min(start + block_tokens, last)
        yield array[layer, start:stop, :][kept_rows(start, stop, skip)].astype(np.float32)


def moments(array, layer: int, first: int, last: int, skip=None, block_tokens: int = 8192) -> tuple[np.ndarray, float]:
    """Mean vector and mean squared norm of tokens first..last-1, streamed."""
    total, square, n = 0.0, 0.0, 0
    for block in token_blocks(array, layer, first, last, block_tokens, skip):
        block = block.astype(np.float64)
        total = total + block.sum(axis=0)
        square += float((block * block).sum())
        n += len(block)
    return total / n, square / n
