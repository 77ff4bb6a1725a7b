"""Greedy decoding after [prefix; query], batched, sharing each prefix's work like scoring does.

A batch holds (prefix, query) rows. Its distinct prefixes run once, left-padded, and their KV
cache is copied to the rows that use them; the queries follow, left-padded too, so every
row's prompt ends in the same column and each decoding step appends one column. Padding
(before a prefix, and between a short prefix and its query) is masked out, and explicit
position ids keep every real token at the position it has in the unpadded prompt. Only the
last position goes through the vocabulary projection, and rows leave the batch as soon as
they emit an end-of-sequence token, produce a stop string or reach the token limit.
"""

from __future__ import annotations

import sys

import torch
from tqdm import tqdm

from demoscope.lm.models import backbone
from demoscope.lm.prefixcache import run_prefix
from demoscope.lm.tokens import pad_batch


def eos_ids(model, tokenizer) -> set[int]:
    """The tokens that end a sequence: the generation config's (one id or a list) and the tokenizer's."""
    config = getattr(model, "generation_config", None)
    ids = getattr(config, "eos_token_id", None)
    found = set([ids] if isinstance(ids, int) else list(ids or []))
    if tokenizer.eos_token_id is not None:
        found.add(tokenizer.eos_token_id)
    return found


def cut_at_stop(text: str, stop: list[str]) -> str:
    """`text` up to the first occurrence of any stop string."""
    ends = [text.find(s) for s in stop if s and s in text]
    return text[: min(ends)] if ends else text


def decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False)


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prefixes: list[list[int]],
    queries: list[list[int]],
    pairs: list[tuple[int, int]] | None,
    device: str,
    max_new_tokens: int,
    stop: list[str],
    batch_tokens: int,
    progress: bool = True,
    min_new_tokens: int = 0,
) -> list[str]:
    """The greedy continuation of prefixes[p] + queries[q] for each (p, q) in `pairs`, in pair order,
    with the first stop string and everything after it removed (and no end-of-sequence token).

    `pairs=None` is the full grid, row-major: prefix 0 with every query, then prefix 1, ...
    Prefixes (with special tokens) and queries (separator + query text) are the prompt
    builder's cut of each prompt's single tokenisation (`promptbuilder.encode_for_scoring`);
    a prefix may be empty, a query may not. A batch holds as many rows as
    fit `batch_tokens` counted as the padded tokens
    of its prompt forward: distinct prefixes x longest prefix + rows x longest query, since a
    prefix runs once and its cache is copied to its rows; decoding then adds at most
    `max_new_tokens` per row to the KV cache, one token per row and step. Decoding is bound
    by reading the weights once per step, so larger batches are faster, on a CPU too.
    The end-of-sequence tokens cannot be chosen before
    `min_new_tokens` tokens (as in `transformers`' `generate`).
    """
    if pairs is None:
        pairs = [(p, q) for p in range(len(prefixes)) for q in range(len(queries))]
    for p, q in pairs:
        if not queries[q]:
            raise ValueError(f"query {q} encodes to no tokens; generation needs at least one")
    texts = [""] * len(pairs)
    if max_new_tokens <= 0 or not pairs:
        return texts
    # Rows sorted by prefix length, then prefix, then query length: rows that share a prefix
    # land in one batch, and padding stays small.
    order = sorted(range(len(pairs)), key=lambda i: (len(prefixes[pairs[i][0]]), pairs[i][0], len(queries[pairs[i][1]])))
    stops = set(eos_ids(model, tokenizer))
    bar = tqdm(total=len(pairs), desc="generate", file=sys.stderr, disable=not progress)
    start = 0
    while start < len(order):
        end, longest_p, longest_q, n_prefixes = start, 0, 0, 0
        while end < len(order):
            p, q = pairs[order[end]]
            wide_p, wide_q = max(longest_p, len(prefixes[p])), max(longest_q, len(queries[q]))
            # A prefix runs once per batch however many rows share it: a k-shot prefix with
            # all its test queries fits one batch where rows x (prefix + query) would split it.
            shared = n_prefixes + (end == start or p != pairs[order[end - 1]][0])
            if end > start and shared * wide_p + (end - start + 1) * wide_q > batch_tokens:
                break
            longest_p, longest_q, n_prefixes, end = wide_p, wide_q, shared, end + 1
        rows = [pairs[i] for i in order[start:end]]
        outputs = _generate_batch(
            model, tokenizer, [prefixes[p] for p, _ in rows], [queries[q] for _, q in rows],
            [p for p, _ in rows], device, max_new_tokens, stop, stops, min_new_tokens,
        )
        for i, text in zip(order[start:end], outputs):
            texts[i] = text
        bar.update(end - start)
        start = end
    bar.close()
    return texts


def _generate_batch(model, tokenizer, row_prefixes, row_queries, row_keys, device, max_new_tokens, stop, stops,
                    min_new_tokens):
    pad = tokenizer.pad_token_id
    n = len(row_queries)
    distinct = list(dict.fromkeys(row_keys))
    which = [distinct.index(key) for key in row_keys]
    first_of = {key: row for row, key in reversed(list(enumerate(row_keys)))}
    # No prefix with a token: nothing is cached, the queries start the sequences.
    _, prefix = run_prefix(backbone(model), [row_prefixes[first_of[key]] for key in distinct], pad, device, skip_empty=True)
    prefix = prefix.select(which)  # each row gets its prefix's keys and values
    # Queries left-padded too, so that every row's prompt ends in the last column.
    q_ids, q_mask = pad_batch(row_queries, pad, left=True)
    out, cached = prefix.forward(model, q_ids, q_mask, left=True, use_cache=True, logits_to_keep=1)
    logits = out.logits[:, -1]
    generated: list[list[int]] = [[] for _ in range(n)]
    active = list(range(n))  # batch row -> row of this call
    banned = torch.tensor(sorted(stops), dtype=torch.long, device=device)
    step = 0
    while True:
        if step < min_new_tokens:  # every active row has generated `step` tokens
            logits[:, banned] = float("-inf")
        tokens = logits.argmax(-1)
        step += 1
        keep = []
        for j, (row, token) in enumerate(zip(active, tokens.tolist())):
            if token in stops:
                continue
            generated[row].append(token)
            if len(generated[row]) < max_new_tokens and not any(s in decode(tokenizer, generated[row]) for s in stop if s):
                keep.append(j)
        if not keep:
            break
        if len(keep) < len(active):  # finished rows leave the batch, and their cache with them
            index = torch.tensor(keep, device=device)
            cached, tokens = cached.select(index), tokens[index]
            active = [active[j] for j in keep]
        out, cached = cached.forward(
            model, tokens[:, None], tokens.new_ones((len(active), 1)), left=True, use_cache=True, logits_to_keep=1
        )
        logits = out.logits[:, -1]
    return [cut_at_stop(decode(tokenizer, ids), stop) for ids in generated]
