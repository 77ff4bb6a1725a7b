"""Log-likelihood of answer options after [prefix; query], sharing work wherever prompts share text.

Every prefix (a demonstration, or k of them) is paired with every query. The
prefix runs once; its KV cache is repeated for the queries, and the query's
cache again for the options. Only the positions that predict option tokens go
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
) -> np.ndarray:
    """Summed log-prob of each option's tokens; shape (prefixes, queries, max options), NaN where absent.

    `options[q]` lists the token ids of query q's options; each must be non-empty.
    """
    n_opts = max(len(o) for o in options)
    out = np.full((len(prefixes), len(queries), n_opts), np.nan)
    body = backbone(model)
    multi_token = any(len(tok) > 1 for opts in options for tok in opts)
    q_order = sorted(range(len(queries)), key=lambda q: len(queries[q]))
    p_order = sorted(range(len(prefixes)), key=lambda p: len(prefixes[p]))
    longest_q = max(len(q) for q in queries)
    per_prefix = len(queries) * (max(len(p) for p in prefixes) + longest_q)
    p_batch = max(1, batch_tokens // max(per_prefix, 1))
    bar = tqdm(total=len(prefixes) * len(queries), desc="score", file=sys.stderr, disable=not progress)
    for start in range(0, len(prefixes), p_batch):
        p_idx = p_order[start : start + p_batch]
        p_ids, p_mask = pad_batch([prefixes[i] for i in p_idx], pad_id, left=True)
        p_pos = (p_mask.cumsum(-1) - 1).clamp(min=0)
        p_out = body(
            input_ids=p_ids.to(device),
            attention_mask=p_mask.to(device),
            position_ids=p_pos.to(device),
            use_cache=True,
        )
        q_chunk = max(1, batch_tokens // (len(p_idx) * (p_ids.shape[1] + longest_q)))
        for q_start in range(0, len(queries), q_chunk):
            q_idx = q_order[q_start : q_start + q_chunk]
            scores = _score_chunk(
                model, body, p_out.past_key_values, p_mask, [queries[q] for q in q_idx],
                [options[q] for q in q_idx], n_opts, multi_token, device, pad_id,
            )
            out[np.ix_(p_idx, q_idx)] = scores
            bar.update(len(p_idx) * len(q_idx))
    bar.close()
    return out


def _score_chunk(model, body, prefix_cache, p_mask, queries, options, n_opts, multi_token, device, pad_id):
    n_p, n_q = p_mask.shape[0], len(queries)
    cache = copy.deepcopy(prefix_cache)
    cache.batch_repeat_interleave(n_q)
    q_ids, q_mask = pad_batch(queries, pad_id, left=False)
    rows_q_ids = q_ids.repeat(n_p, 1)
    rows_q_mask = q_mask.repeat(n_p, 1)
    mask = torch.cat([p_mask.repeat_interleave(n_q, 0), rows_q_mask], dim=1)
    p_len = p_mask.sum(-1).repeat_interleave(n_q)
    pos = p_len[:, None] + torch.arange(q_ids.shape[1])[None]
    q_out = body(
        input_ids=rows_q_ids.to(device),
        attention_mask=mask.to(device),
        position_ids=pos.to(device),
        past_key_values=cache,
        use_cache=multi_token,
    )
    q_len = rows_q_mask.sum(-1)
    last = q_out.last_hidden_state[torch.arange(n_p * n_q), (q_len - 1).to(device)]
    row_opts = [options[q] for _ in range(n_p) for q in range(n_q)]
    present = torch.tensor([[k < len(opts) for k in range(n_opts)] for opts in row_opts])
    first_tok = torch.tensor([[opts[k][0] if k < len(opts) else 0 for k in range(n_opts)] for opts in row_opts])
    scores = _log_probs(model, last).cpu().gather(1, first_tok)  # (rows, n_opts)
    if multi_token:
        scores += _tail_scores(model, body, q_out.past_key_values, mask, p_len + q_len, row_opts, n_opts, device, pad_id)
    scores[~present] = float("nan")
    return scores.double().numpy().reshape(n_p, n_q, n_opts)


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
        past_key_values=cache,
        use_cache=False,
    ).last_hidden_state
    real = o_mask.bool()
    # Project only the real positions: the vocabulary is the most expensive matrix here.
    token_lp = _log_probs(model, hidden[real.to(device)]).cpu().gather(1, targets[real][:, None])[:, 0]
    sums = torch.zeros(len(options)).index_add_(0, real.nonzero()[:, 0], token_lp)
    return sums.view(-1, n_opts)
