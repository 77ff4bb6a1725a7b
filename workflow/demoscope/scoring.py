"""Log-likelihood of answer options after [prefix; query], sharing work wherever prompts share text.

Every prefix (a demonstration, or k of them) is paired with every query, or
only with its queries in a given list of pairs. The prefix runs once; its KV
cache is repeated for its queries, and the query's cache again for the
options. Only the positions that predict option tokens go
through the vocabulary projection. Prefixes are left-padded with explicit
position ids, so padding never shifts a real token's position.
"""

from __future__ import annotations

import copy
import sys

import numpy as np
import torch
from tqdm import tqdm

from .models import backbone
from .tokens import pad_batch


def _log_probs(model, hidden: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(model.get_output_embeddings()(hidden).float(), dim=-1)


@torch.inference_mode()
def score_options(
    model,
    prefixes: list[list[int]],
    queries: list[list[int]],
    options: list[list[list[int]]],
    device: str,
    pad_id: int,
    batch_tokens: int = 4096,
    progress: bool = True,
    pairs: list[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Summed log-prob of each option's tokens; shape (prefixes, queries, max options), NaN where absent.

    `options[q]` lists the token ids of query q's options; each must be non-empty. With
    `pairs`, a list of (prefix, query) index pairs, only those pairs are scored and the result
    is (pairs, max options): a prompt per test query costs one row, not a row per grid cell.
    """
    n_opts = max(len(o) for o in options)
    grid = pairs is None
    if grid:
        pairs = [(p, q) for p in range(len(prefixes)) for q in range(len(queries))]
    out = np.full((len(pairs), n_opts), np.nan)
    rows_of: dict[int, list[int]] = {}
    for row, (p, _) in enumerate(pairs):
        rows_of.setdefault(p, []).append(row)
    body = backbone(model)
    multi_token = any(len(tok) > 1 for opts in options for tok in opts)
    p_order = sorted(rows_of, key=lambda p: len(prefixes[p]))
    longest_q = max(len(queries[q]) for _, q in pairs)
    per_prefix = max(len(r) for r in rows_of.values()) * (max(len(prefixes[p]) for p in rows_of) + longest_q)
    p_batch = max(1, batch_tokens // max(per_prefix, 1))
    bar = tqdm(total=len(pairs), desc="score", file=sys.stderr, disable=not progress)
    for start in range(0, len(p_order), p_batch):
        p_idx = p_order[start : start + p_batch]
        p_ids, p_mask = pad_batch([prefixes[i] for i in p_idx], pad_id, left=True)
        p_pos = (p_mask.cumsum(-1) - 1).clamp(min=0)
        p_out = body(
            input_ids=p_ids.to(device),
            attention_mask=p_mask.to(device),
            position_ids=p_pos.to(device),
            use_cache=True,
        )
        # (row of the prefix batch, pair) for every pair of these prefixes, short queries first.
        rows = [(local, row) for local, p in enumerate(p_idx) for row in rows_of[p]]
        rows.sort(key=lambda r: len(queries[pairs[r[1]][1]]))
        chunk = max(1, batch_tokens // (p_ids.shape[1] + longest_q))
        for c in range(0, len(rows), chunk):
            part = rows[c : c + chunk]
            q_idx = [pairs[row][1] for _, row in part]
            scores = _score_rows(
                model, body, p_out.cache, p_mask, [local for local, _ in part],
                [queries[q] for q in q_idx], [options[q] for q in q_idx], n_opts, multi_token, device, pad_id,
            )
            out[[row for _, row in part]] = scores
            bar.update(len(part))
    bar.close()
    return out.reshape(len(prefixes), len(queries), n_opts) if grid else out


def _score_rows(model, body, prefix_cache, p_mask, prefix_rows, queries, options, n_opts, multi_token, device, pad_id):
    """Row i: the query `queries[i]` after prefix `prefix_rows[i]` of the prefix batch."""
    select = torch.tensor(prefix_rows)
    cache = copy.deepcopy(prefix_cache)
    cache.batch_select_indices(select.to(device))
    q_ids, q_mask = pad_batch(queries, pad_id, left=False)
    row_p_mask = p_mask[select]
    mask = torch.cat([row_p_mask, q_mask], dim=1)
    p_len = row_p_mask.sum(-1)
    pos = p_len[:, None] + torch.arange(q_ids.shape[1])[None]
    q_out = body(
        input_ids=q_ids.to(device),
        attention_mask=mask.to(device),
        position_ids=pos.to(device),
        cache=cache,
        use_cache=multi_token,
    )
    q_len = q_mask.sum(-1)
    last = q_out.last_hidden_state[torch.arange(len(queries)), (q_len - 1).to(device)]
    present = torch.tensor([[k < len(opts) for k in range(n_opts)] for opts in options])
    first_tok = torch.tensor([[opts[k][0] if k < len(opts) else 0 for k in range(n_opts)] for opts in options])
    scores = _log_probs(model, last).cpu().gather(1, first_tok)  # (rows, n_opts)
    if multi_token:
        scores += _tail_scores(model, body, q_out.cache, mask, p_len + q_len, options, n_opts, device, pad_id)
    scores[~present] = float("nan")
    return scores.double().numpy()


def _tail_scores(model, body, cache, mask, lengths, row_opts, n_opts, device, pad_id) -> torch.Tensor:
    """Log-prob of every option token after the first: each row's cache continues with each option."""
    cache.batch_repeat_interleave(n_opts)
    options = [opts[k] if k < len(opts) else [pad_id] for opts in row_opts for k in range(n_opts)]
    o_ids, o_mask = pad_batch([o[:-1] for o in options], pad_id, left=False)
    targets, _ = pad_batch([o[1:] for o in options], pad_id, left=False)
    full_mask = torch.cat([mask.repeat_interleave(n_opts, 0), o_mask], dim=1)
    o_pos = lengths.repeat_interleave(n_opts)[:, None] + torch.arange(o_ids.shape[1])[None]
    hidden = body(
        input_ids=o_ids.to(device),
        attention_mask=full_mask.to(device),
        position_ids=o_pos.to(device),
        cache=cache,
        use_cache=False,
    ).last_hidden_state
    real = o_mask.bool()
    # Project only the real positions: the vocabulary is the most expensive matrix here.
    token_lp = _log_probs(model, hidden[real.to(device)]).cpu().gather(1, targets[real][:, None])[:, 0]
    sums = torch.zeros(len(options)).index_add_(0, real.nonzero()[:, 0], token_lp)
    return sums.view(-1, n_opts)
