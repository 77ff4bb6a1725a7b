"""The model's log-probs of a test query (and of its options) after chosen demonstrations, for
the retrievers that read the model (ConE and MDL).

Prompts are tokenised exactly as the evaluation tokenises them (`evaluation.encode_prefixes`,
`quality.encode_queries`): instruction and demonstrations as one first segment, then
`separator + query`, then `answer_prefix + option`. Each row is one whole sequence, run once
and right-padded, and only the summed log-probs of its query tokens and its option tokens are
kept, so that a row's numbers do not depend on its batch.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from demoscope.selection.evaluation import prefix_text
from demoscope.lm.models import backbone
from demoscope.data.templates import Template
from demoscope.lm.tokens import encode_text, length_batches, pad_batch
from demoscope.lm.zeroshot import next_token_entropy


@torch.inference_mode()
def span_logprobs(model, rows: list[list[int]], spans: list[list[tuple[int, int]]], device: str, pad_id: int,
                  batch_tokens: int, after: list[list[int]] | None = None) -> list[list[float]]:
    """For each row of token ids, the summed log-prob of the tokens in each [start, end) span of
    it (start >= 1: a token is predicted from the ones before it), followed by the log-prob of
    each token of `after[i]` as the row's next token."""
    body, head = backbone(model), model.get_output_embeddings()
    out: list[list[float] | None] = [None] * len(rows)
    for batch in length_batches([len(r) for r in rows], batch_tokens):
        ids, mask = pad_batch([rows[i] for i in batch], pad_id, left=False)
        hidden = body(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        for local, i in enumerate(batch):
            sums = []
            for start, end in spans[i]:
                if not 1 <= start <= end <= len(rows[i]):
                    raise ValueError(f"span ({start}, {end}) does not fit a row of {len(rows[i])} tokens")
                lp = torch.log_softmax(head(hidden[local, start - 1 : end - 1]).float(), dim=-1)
                target = ids[local, start:end].to(lp.device)
                sums.append(float(lp.gather(1, target[:, None]).sum()))
            if after is not None and after[i]:
                last = torch.log_softmax(head(hidden[local, len(rows[i]) - 1]).float(), dim=-1)
                sums += [float(last[t]) for t in after[i]]
            out[i] = sums
    return out


class LMScorer:
    """The evaluated model, its tokenizer and the task's template: scores the test queries
    after sets of candidates, tokenised as the evaluation tokenises them."""

    def __init__(self, model, tokenizer, template: Template, candidates: pl.DataFrame, queries: pl.DataFrame,
                 device: str, batch_tokens: int):
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.device, self.batch_tokens = device, batch_tokens
        self.demos = candidates["demonstration"].to_list()
        self.q_ids = [encode_text(tokenizer, template.separator + q, first=False) for q in queries["query"]]
        self.o_ids = [
            [encode_text(tokenizer, template.answer_prefix + o, first=False) for o in opts]
            for opts in queries["options"].to_list()
        ]

    def prefix(self, rows) -> list[int]:
        return encode_text(self.tokenizer, prefix_text(self.template, [self.demos[r] for r in rows]), first=True)

    def query_logprob(self, pairs: list[tuple[int, list[int]]]) -> np.ndarray:
        """Summed log-prob of test query q's tokens after the demonstrations of candidate rows
        `rows`, for each (q, rows): minus ConE's cross-entropy of the test input."""
        seqs, spans = [], []
        for q, rows in pairs:
            prefix = self.prefix(rows)
            seqs.append(prefix + self.q_ids[q])
            spans.append([(len(prefix), len(prefix) + len(self.q_ids[q]))])
        scored = span_logprobs(self.model, seqs, spans, self.device, self.tokenizer.pad_token_id, self.batch_tokens)
        return np.array([s[0] for s in scored])

    def option_scores(self, pairs: list[tuple[int, list[int]]]) -> tuple[np.ndarray, ...]:
        """For each (q, rows): the query's summed log-prob and token count, and each option's
        summed log-prob and token count (rows x the most options, NaN where absent)."""
        n_opts = max(len(self.o_ids[q]) for q, _ in pairs)
        query_lp = np.zeros(len(pairs))
        option_lp = np.full((len(pairs), n_opts), np.nan)
        option_len = np.full((len(pairs), n_opts), np.nan)
        seqs, spans, after, where = [], [], [], []
        for p, (q, rows) in enumerate(pairs):
            prefix = self.prefix(rows)
            start, end = len(prefix), len(prefix) + len(self.q_ids[q])
            options = self.o_ids[q]
            if any(not option for option in options):
                raise ValueError(f"test query {q}: an option encodes to no tokens")
            option_len[p, : len(options)] = [len(option) for option in options]
            if all(len(option) == 1 for option in options):
                # Single-token options: one row, the options read off its next-token distribution.
                seqs.append(prefix + self.q_ids[q])
                spans.append([(start, end)])
                after.append([option[0] for option in options])
                where.append((p, None))
                continue
            for o, option in enumerate(options):
                seqs.append(prefix + self.q_ids[q] + option)
                spans.append([(start, end), (end, end + len(option))])
                after.append([])
                where.append((p, o))
        scored = span_logprobs(self.model, seqs, spans, self.device, self.tokenizer.pad_token_id, self.batch_tokens,
                               after=after)
        for (p, o), sums in zip(where, scored):
            query_lp[p] = sums[0]  # the same for every option of the row
            if o is None:
                option_lp[p, : len(sums) - 1] = sums[1:]
            else:
                option_lp[p, o] = sums[1]
        query_len = np.array([len(self.q_ids[q]) for q, _ in pairs], dtype=float)
        return query_lp, query_len, option_lp, option_len

    def next_token_entropy(self, pairs: list[tuple[int, list[int]]]) -> np.ndarray:
        """Entropy (nats) of the next token after [demonstrations; query], where a generation
        task's answer starts."""
        prompts = [self.prefix(rows) + self.q_ids[q] for q, rows in pairs]
        return next_token_entropy(self.model, prompts, self.device, self.tokenizer.pad_token_id, self.batch_tokens)
