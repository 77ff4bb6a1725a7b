"""Run prompt prefixes once and continue rows after them from their KV cache (scoring, generation, query dumps, zero-shot).

This is the one module that runs a left-padded prefix batch with explicit position ids,
copies, selects or repeats a KV cache, and lays out the attention mask and position ids of a
continuation after cached tokens. Prefixes are left-padded so that every row ends in the same
column; position ids count only real tokens, so padding never shifts a real token's position,
and a continuation's tokens take the positions they have in the unpadded prompt. The results
equal a plain forward of each whole prompt alone (tests/test_prefixcache.py).
"""

from __future__ import annotations

import copy

import torch

from demoscope.lm.tokens import pad_batch


def left_padded(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids, padding mask and position ids of a left-padded batch; a row's first real
    token is at position 0 (padding takes position 0 too, and is masked out)."""
    ids, mask = pad_batch(seqs, pad_id, left=True)
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def continuation(before: torch.Tensor, mask: torch.Tensor, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention mask and position ids of tokens that follow the rows of `before`, the padding
    mask of what is already cached. `mask` is the new tokens' padding mask, left-padded (a
    prompt whose last token must sit in the last column) or right-padded; either way the
    first real new token takes the position after the row's last real cached token."""
    mask = mask.to(before.device)
    if left:
        steps = (mask.cumsum(-1) - 1).clamp(min=0)
    else:
        steps = torch.arange(mask.shape[1], device=before.device)[None]
    return torch.cat([before, mask], dim=1), before.sum(-1)[:, None] + steps


class Cached:
    """Rows of a KV cache (None while no token is cached) and the padding mask of the tokens it
    holds, kept on the model's device."""

    def __init__(self, cache, mask: torch.Tensor, device: str):
        self.cache, self.mask, self.device = cache, mask.to(device), device

    def __len__(self) -> int:
        return self.mask.shape[0]

    def select(self, rows, keep: bool = False) -> "Cached":
        """The cached rows `rows` (an index may repeat), in that order. With `keep` the cache is
        copied first, so this one can serve other rows later; without, it is narrowed in place
        and this object must not be used again."""
        index = torch.as_tensor(rows, dtype=torch.long).to(self.device)
        cache = copy.deepcopy(self.cache) if keep else self.cache
        if cache is not None:
            cache.batch_select_indices(index)
        return Cached(cache, self.mask[index], self.device)

    def repeat(self, n: int) -> "Cached":
        """Each row n times in a row (row i becomes rows i*n .. i*n+n-1), in place."""
        if self.cache is not None:
            self.cache.batch_repeat_interleave(n)
        self.mask = self.mask.repeat_interleave(n, 0)
        return self

    def forward(self, module, ids: torch.Tensor, mask: torch.Tensor, left: bool, **kwargs):
        """Run `ids` (with padding mask `mask`, left- or right-padded) after the cached rows, one
        row each. Returns the module's output and the rows cached after it (the output's cache,
        None when `use_cache=False`, and the mask of everything it holds). The cache object is
        extended in place by the module: this object must not be used again."""
        full, pos = continuation(self.mask, mask, left)
        return self.forward_laid_out(module, ids, full, pos, **kwargs)

    def forward_laid_out(self, module, ids: torch.Tensor, full: torch.Tensor, pos: torch.Tensor, **kwargs):
        """`forward` for a continuation whose attention mask (cached and new columns) and
        position ids `continuation` laid out ahead of time, as a dump plan does."""
        out = module(
            input_ids=ids.to(self.device),
            attention_mask=full.to(self.device),
            position_ids=pos.to(self.device),
            cache=self.cache,
            **kwargs,
        )
        return out, Cached(getattr(out, "cache", None), full, self.device)


def run_padded(body, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, device: str, **kwargs):
    """One forward of a left-padded batch (`left_padded`'s output); returns the output and, with
    `use_cache=True`, its rows cached for what follows."""
    out = body(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device), **kwargs)
    return out, Cached(getattr(out, "cache", None), mask, device)


def run_prefix(body, seqs: list[list[int]], pad_id: int, device: str, use_cache: bool = True, skip_empty: bool = False):
    """Run the prefixes `seqs` once, left-padded; returns the output and the cached rows, one per
    prefix. With `skip_empty`, a batch where no prefix has a token runs nothing (output None):
    whatever follows starts the sequences."""
    ids, mask, pos = left_padded(seqs, pad_id)
    if skip_empty and not mask.any():
        return None, Cached(None, torch.zeros((len(seqs), 0), dtype=torch.long), device)
    return run_padded(body, ids, mask, pos, device, use_cache=use_cache)
