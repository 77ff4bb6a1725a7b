"""Attention-masking strategies: how a candidate is encoded when its activations are read.

Each strategy turns the candidates into forward batches and says which positions of each
batch belong to the store, in store order. See docs/masks.md for the definitions and
diagrams.

- causal:        the demonstration alone, ordinary causal attention.
- instruction:   the task instruction, its separator, then the demonstration, causal, rendered
                 and tokenised as one text (the scored 1-shot prompt's prefix); only the
                 demonstration's tokens are kept.
- bidirectional: the demonstration alone, every token attending to every other.
- packed:        several demonstrations in one row, block-diagonal causal mask, positions
                 restarting per demonstration; equals causal, without padding.
- query:         [instruction; demonstration; query] for Q fixed probe queries (never the
                 quality queries, unless a user opts in); only the query's own tokens are
                 kept (the only ones that see the demonstration).

Every strategy that places the demonstration inside a prompt takes its token ids and spans
from `promptbuilder.PromptBuilder`, the builder quality scoring uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from demoscope.lm.prefixcache import continuation, left_padded
from demoscope.lm.promptbuilder import PromptBuilder, PromptError
from demoscope.data.templates import Template
from demoscope.lm.tokens import encode_text, pad_batch

MASKS = ("causal", "instruction", "bidirectional", "packed", "query")


@dataclass
class Batch:
    """One forward (or a prefix forward plus a continuation) and the positions to keep."""

    first: int  # first segment in the batch
    last: int  # one past the last segment
    input_ids: torch.Tensor
    attention_mask: torch.Tensor  # 2D padding mask, or 4D additive float mask
    position_ids: torch.Tensor
    keep: torch.Tensor  # bool (rows, width): kept positions, row-major = store order
    prefix: dict | None = None  # query strategy: the demonstration forward that builds the cache


@dataclass
class Plan:
    """Token ids of every stored segment and how to batch them."""

    segments: list[list[int]]  # kept token ids, store order
    batches: list[Batch] = field(default_factory=list)
    segments_per_candidate: int = 1


def budget_groups(sizes: list[int], batch_tokens: int, padded: bool = True) -> list[tuple[int, int]]:
    """Consecutive groups whose size (count x longest when padded, else the sum) fits batch_tokens."""
    groups, first, longest, total = [], 0, 0, 0
    for i, n in enumerate(sizes):
        longest_if, total_if = max(longest, n), total + n
        cost = longest_if * (i - first + 1) if padded else total_if
        if i > first and cost > batch_tokens:
            groups.append((first, i))
            first, longest_if, total_if = i, n, n
        longest, total = longest_if, total_if
    if sizes:
        groups.append((first, len(sizes)))
    return groups


def _padded_batches(seqs: list[list[int]], pad: int, batch_tokens: int, spans: list[tuple[int, int]] | None = None):
    """Right-padded batches; `spans` (start, stop) per sequence limits the kept positions."""
    for first, last in budget_groups([len(s) for s in seqs], batch_tokens):
        ids, mask = pad_batch(seqs[first:last], pad, left=False)
        keep = mask.bool().clone()
        if spans is not None:
            for row, (start, stop) in enumerate(spans[first:last]):
                keep[row, :start] = False
                keep[row, stop:] = False
        yield first, last, ids, mask, keep


def plan_causal(demos: list[str], tokenizer, batch_tokens: int, **_) -> Plan:
    seqs = [encode_text(tokenizer, d, first=True) for d in demos]
    plan = Plan(segments=seqs)
    for first, last, ids, mask, keep in _padded_batches(seqs, tokenizer.pad_token_id, batch_tokens):
        pos = torch.arange(ids.shape[1]).expand_as(ids)
        plan.batches.append(Batch(first, last, ids, mask, pos, keep))
    return plan


def plan_instruction(demos: list[str], tokenizer, batch_tokens: int, instruction: str, separator: str, **_) -> Plan:
    """Each demonstration in the prefix of its scored 1-shot prompt (instruction, separator,
    demonstration, tokenised as one text); the stored tokens are the demonstration's span."""
    if not instruction:
        raise ValueError("the `instruction` mask needs the task's template.instruction text")
    builder = PromptBuilder(tokenizer, Template.from_config({"instruction": instruction, "separator": separator}))
    prompts = builder.build_many([([d], None, None) for d in demos])
    seqs = [p.ids for p in prompts]
    spans = [p.span("demonstration") for p in prompts]
    plan = Plan(segments=[p.tokens("demonstration") for p in prompts])
    for first, last, ids, mask, keep in _padded_batches(seqs, tokenizer.pad_token_id, batch_tokens, spans):
        pos = torch.arange(ids.shape[1]).expand_as(ids)
        plan.batches.append(Batch(first, last, ids, mask, pos, keep))
    return plan


def additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Bool (rows, q, k) -> additive float mask (rows, 1, q, k): 0 where allowed, min where not."""
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def plan_bidirectional(demos: list[str], tokenizer, batch_tokens: int, dtype: torch.dtype, **_) -> Plan:
    seqs = [encode_text(tokenizer, d, first=True) for d in demos]
    plan = Plan(segments=seqs)
    for first, last, ids, mask, keep in _padded_batches(seqs, tokenizer.pad_token_id, batch_tokens):
        real = mask.bool()
        # Every query row (padding rows too, so none is fully masked) sees every real key of its row.
        allowed = real[:, None, :].expand(-1, ids.shape[1], -1)
        pos = torch.arange(ids.shape[1]).expand_as(ids)
        plan.batches.append(Batch(first, last, ids, additive(allowed, dtype), pos, keep))
    return plan


def plan_packed(demos: list[str], tokenizer, batch_tokens: int, dtype: torch.dtype, **_) -> Plan:
    seqs = [encode_text(tokenizer, d, first=True) for d in demos]
    plan = Plan(segments=seqs)
    for first, last in budget_groups([len(s) for s in seqs], batch_tokens, padded=False):
        row = [t for s in seqs[first:last] for t in s]
        width = len(row)
        segment = torch.cat([torch.full((len(s),), i) for i, s in enumerate(seqs[first:last])])
        pos = torch.cat([torch.arange(len(s)) for s in seqs[first:last]])
        causal = torch.tril(torch.ones(width, width, dtype=torch.bool))
        allowed = causal & (segment[:, None] == segment[None, :])
        plan.batches.append(
            Batch(first, last, torch.tensor([row]), additive(allowed[None], dtype), pos[None],
                  torch.ones((1, width), dtype=torch.bool))
        )
    return plan


def plan_query(
    demos: list[str], tokenizer, batch_tokens: int, queries: list[str], separator: str, instruction: str = "", **_
) -> Plan:
    """The 1-shot prompt [instruction; separator; demonstration; separator; query] of every
    candidate and probe query, split by the prompt builder into the prefix (run once per
    candidate, its KV cache repeated) and the continuation; only the query's own tokens are
    stored (not the separator before it). Segments are candidate-major: candidate i's Q
    query segments are i*Q .. i*Q+Q-1."""
    if not queries:
        raise ValueError("the `query` mask needs at least one probe query")
    builder = PromptBuilder(tokenizer, Template.from_config({"instruction": instruction, "separator": separator}))
    try:
        prefixes, q_ids, q_starts = builder.split([[d] for d in demos], queries)
    except PromptError as err:
        raise ValueError(f"the `query` mask: {err}") from err
    n_q = len(q_ids)
    plan = Plan(segments=[q[s:] for _ in prefixes for q, s in zip(q_ids, q_starts)], segments_per_candidate=n_q)
    q_width = max(len(q) for q in q_ids)
    per_candidate = n_q * (max(len(p) for p in prefixes) + q_width)
    group = max(1, batch_tokens // per_candidate)
    pad = tokenizer.pad_token_id
    for first in range(0, len(prefixes), group):
        last = min(first + group, len(prefixes))
        p_ids, p_mask, p_pos = left_padded(prefixes[first:last], pad)
        ids, q_mask = pad_batch(q_ids, pad, left=False)
        keep = q_mask.bool().clone()
        for row, start in enumerate(q_starts):
            keep[row, :start] = False  # the separator before the query is not stored
        n_p = last - first
        full, pos = continuation(p_mask.repeat_interleave(n_q, 0), q_mask.repeat(n_p, 1), left=False)
        plan.batches.append(
            Batch(first * n_q, last * n_q, ids.repeat(n_p, 1), full, pos, keep.repeat(n_p, 1),
                  prefix={"input_ids": p_ids, "attention_mask": p_mask, "position_ids": p_pos, "repeat": n_q})
        )
    return plan


PLANNERS = {
    "causal": plan_causal,
    "instruction": plan_instruction,
    "bidirectional": plan_bidirectional,
    "packed": plan_packed,
    "query": plan_query,
}


def plan(mask: str, demos: list[str], tokenizer, batch_tokens: int, **context) -> Plan:
    # The mask registry names every mask's planner (these, and any mask module added there).
    from demoscope.activations.mask_registry import mask as entry

    return entry(mask).plan(demos, tokenizer, batch_tokens, **context)
