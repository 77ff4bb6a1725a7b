"""Log-likelihood of answer options after [prefix; query], sharing work wherever prompts share text.

Every prefix (a demonstration, or k of them) is paired with every query, or
only with its queries in a given list of pairs. The prefix runs once; its KV
cache is repeated for its queries, and the query's cache again for the
options. Only the positions that predict option tokens go
through the vocabulary projection. Prefixes are left-padded with explicit
position ids, so padding never shifts a real token's position.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from tqdm import tqdm

from demoscope.lm.models import backbone
from demoscope.lm.prefixcache import Cached, run_prefix
from demoscope.lm.tokens import pad_batch


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
        _, cached = run_prefix(body, [prefixes[i] for i in p_idx], pad_id, device)
        # (row of the prefix batch, pair) for every pair of these prefixes, short queries first.
        rows = [(local, row) for local, p in enumerate(p_idx) for row in rows_of[p]]
        rows.sort(key=lambda r: len(queries[pairs[r[1]][1]]))
        chunk = max(1, batch_tokens // (cached.mask.shape[1] + longest_q))
        for c in range(0, len(rows), chunk):
            part = rows[c : c + chunk]
            q_idx = [pairs[row][1] for _, row in part]
            scores = _score_rows(
                model, body, cached.select([local for local, _ in part], keep=True),
                [queries[q] for q in q_idx], [options[q] for q in q_idx], n_opts, multi_token, device, pad_id,
            )
            out[[row for _, row in part]] = scores
            bar.update(len(part))
    bar.close()
    return out.reshape(len(prefixes), len(queries), n_opts) if grid else out


def _score_rows(model, body, prefix: Cached, queries, options, n_opts, multi_token, device, pad_id):
    """Row i: the query `queries[i]` after row i of the cached prefixes."""
    q_ids, q_mask = pad_batch(queries, pad_id, left=False)
    q_out, after = prefix.forward(body, q_ids, q_mask, left=False, use_cache=multi_token)
    q_len = q_mask.sum(-1)
    last = q_out.last_hidden_state[torch.arange(len(queries)), (q_len - 1).to(device)]
    present = torch.tensor([[k < len(opts) for k in range(n_opts)] for opts in options])
    first_tok = torch.tensor([[opts[k][0] if k < len(opts) else 0 for k in range(n_opts)] for opts in options])
    scores = _log_probs(model, last).cpu().gather(1, first_tok)  # (rows, n_opts)
    if multi_token:
        scores += _tail_scores(model, body, after, options, n_opts, device, pad_id)
    scores[~present] = float("nan")
    return scores.double().numpy()


def _tail_scores(model, body, after: Cached, row_opts, n_opts, device, pad_id) -> torch.Tensor:
    """Log-prob of every option token after the first: each row's cache continues with each option."""
    options = [opts[k] if k < len(opts) else [pad_id] for opts in row_opts for k in range(n_opts)]
    o_ids, o_mask = pad_batch([o[:-1] for o in options], pad_id, left=False)
    targets, _ = pad_batch([o[1:] for o in options], pad_id, left=False)
    hidden = after.repeat(n_opts).forward(body, o_ids, o_mask, left=False, use_cache=False)[0].last_hidden_state
    real = o_mask.bool()
    # Project only the real positions: the vocabulary is the most expensive matrix here.
    token_lp = _log_probs(model, hidden[real.to(device)]).cpu().gather(1, targets[real][:, None])[:, 0]
    sums = torch.zeros(len(options)).index_add_(0, real.nonzero()[:, 0], token_lp)
    return sums.view(-1, n_opts)
