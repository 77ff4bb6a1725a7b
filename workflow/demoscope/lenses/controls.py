"""The controls lens: cheap, non-activation signals per candidate, tested beside the activations.

Activations matter only if they add something over what is cheap to compute. Each control is
one number per candidate, correlated with quality exactly like an activation feature and in the
same family of tests (so the max-T null counts it once, not once per layer and store):

- `n_tokens`: the demonstration's token count (as rendered, with the tokenizer's special tokens).
- `label_index`: the demonstration's label as the index of its option (binary classification
  only: with two labels a rank correlation with it is a point-biserial one; with more it would
  depend on an arbitrary order of the labels, so it is left out).
- `demo_loglik`: the demonstration's mean token log-likelihood under the model, read alone
  (every token after the first, given the ones before it).
- `zero_shot_gold`: the candidate's input asked zero-shot (the zero-shot prompt of
  `zeroshot.py`): the probability of its gold option among the options (classification and
  multiple choice); for generation tasks, the mean per-token log-prob of its gold answer.
- `query_cosine`: the mean cosine between the candidate's embedding and the quality queries'
  (mean-pooled last hidden states of the model, `embeddings.py`: inputs only, no answers).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from demoscope.lm.embeddings import candidate_texts, mean_pooled
from demoscope.lm.models import backbone
from demoscope.lm.scoring import score_options
from demoscope.data.templates import Template
from demoscope.lm.tokens import encode_text, length_batches, pad_batch
from demoscope.lm.zeroshot import zero_shot_prompts


@torch.inference_mode()
def mean_token_loglik(model, sequences: list[list[int]], device: str, pad_id: int, batch_tokens: int) -> np.ndarray:
    """Mean log-prob of each sequence's tokens after the first, given the tokens before them."""
    body, out = backbone(model), np.full(len(sequences), np.nan)
    for rows in length_batches([len(s) for s in sequences], batch_tokens):
        ids, mask = pad_batch([sequences[i] for i in rows], pad_id, left=False)
        hidden = body(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        lp = torch.log_softmax(model.get_output_embeddings()(hidden[:, :-1]).float(), dim=-1)
        target = ids[:, 1:].to(device)
        token_lp = lp.gather(-1, target[..., None])[..., 0] * mask[:, 1:].to(device)
        counts = mask[:, 1:].sum(-1)
        for row, i in enumerate(rows):
            if counts[row] > 0:
                out[i] = float(token_lp[row].sum().cpu() / counts[row])
    return out


def zero_shot_gold(model, tokenizer, template: Template, candidates: pl.DataFrame, device: str, batch_tokens: int,
                   generation: bool) -> np.ndarray:
    prompts = zero_shot_prompts(tokenizer, template, candidates)
    pairs = [(i, i) for i in range(len(prompts))]
    prefixes, queries = [p[:-1] for p in prompts], [p[-1:] for p in prompts]
    if generation:
        answers = [[encode_text(tokenizer, template.answer_prefix + a, first=False)] for a in candidates["answer"]]
        lp = score_options(model, prefixes, queries, answers, device, tokenizer.pad_token_id, batch_tokens,
                           progress=False, pairs=pairs)[:, 0]
        return lp / np.array([len(a[0]) for a in answers], dtype=float)
    options = [[encode_text(tokenizer, template.answer_prefix + o, first=False) for o in opts]
               for opts in candidates["options"].to_list()]
    lp = score_options(model, prefixes, queries, options, device, tokenizer.pad_token_id, batch_tokens,
                       progress=False, pairs=pairs)
    lp = np.where(np.isnan(lp), -np.inf, lp)
    probs = np.exp(lp - lp.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return probs[np.arange(len(prompts)), candidates["gold_index"].to_numpy()]


def query_cosine(model, tokenizer, template: Template, candidates: pl.DataFrame, queries: pl.DataFrame, device: str,
                 batch_tokens: int) -> np.ndarray:
    encoder = backbone(model)
    cand = mean_pooled(encoder, tokenizer, candidate_texts(template, candidates), device, batch_tokens)
    query = mean_pooled(encoder, tokenizer, queries["query"].to_list(), device, batch_tokens)
    cand /= np.linalg.norm(cand, axis=1, keepdims=True)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    return (cand @ query.T).mean(axis=1)


def control_table(model, tokenizer, template: Template, candidates: pl.DataFrame, queries: pl.DataFrame, kind: str,
                  device: str, batch_tokens: int) -> pl.DataFrame:
    """One row per candidate: cand_id and every control that applies to the task's kind."""
    demos = [encode_text(tokenizer, d, first=True) for d in candidates["demonstration"]]
    columns = {
        "cand_id": candidates["cand_id"],
        "n_tokens": candidates["n_tokens"].cast(pl.Float64),
    }
    options = candidates["options"].to_list()
    if kind == "classification" and all(len(o) == 2 for o in options):
        columns["label_index"] = candidates["gold_index"].cast(pl.Float64)
    columns["demo_loglik"] = mean_token_loglik(model, demos, device, tokenizer.pad_token_id, batch_tokens)
    columns["zero_shot_gold"] = zero_shot_gold(model, tokenizer, template, candidates, device, batch_tokens,
                                               kind == "generation")
    columns["query_cosine"] = query_cosine(model, tokenizer, template, candidates, queries, device, batch_tokens)
    return pl.DataFrame(columns)
