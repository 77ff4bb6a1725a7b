"""CondAcc quality (Chang & Jia 2023): a candidate's mean accuracy over random k-shot prompts that contain it.

One-shot quality asks how well a single demonstration prompts the model; it is a noisy target
(docs/reliability.md), and with one demonstration the demonstration's label dominates. Chang &
Jia's CondAcc asks instead how well the k-shot prompts that contain the candidate do, averaged
over many random companions: the candidate's expected contribution to a random prompt.

The prompts: `sets` rounds; each round shuffles the candidates (seeded) and cuts the order into
groups of k, the prompt's demonstrations in that order. When k does not divide the number of
candidates, the last group of a round is completed with candidates drawn from the rest of that
round (so those few appear in one more prompt). Every candidate is thus in `sets` (or
`sets + 1`) prompts, and all prompts together cost about `sets * n / k` prompts x queries. Each
prompt is `instruction + separator`, its demonstrations joined by the separator, then
`separator + query`, built and scored by the one prompt builder (`quality.encode_prompts`) like
the selection stage's k-shot prompts and, with k = 1, exactly like the one-shot quality prompt.

Per prompt and quality query the outcomes are kept (`correct`, `correct_norm`, `gold_logprob`,
`gold_logprob_norm`); a candidate's `accuracy` is the mean over its prompts of the prompt's
accuracy over the queries (the other metrics likewise), so the quality table has the one-shot
table's columns and every lens is correlated against it the same way.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from demoscope.quality.oneshot import by_query_table, encode_prompts, generation_outcomes, option_lengths, outcomes
from demoscope.quality.metrics import OUTCOME_OF, QUALITY_METRICS
from demoscope.lm.scoring import score_options

# Candidates use `seed`, quality queries seed+1, test queries seed+2, the SAE pool seed+3.
CONDACC_SEED_OFFSET = 4


def draw_prompts(cand_ids: list[int], k: int, sets: int, seed: int) -> list[list[int]]:
    """The demonstrations (cand_ids, in prompt order) of every prompt, round by round."""
    n = len(cand_ids)
    if not 1 <= k <= n:
        raise ValueError(f"quality.condacc.k: {k} demonstrations per prompt, but the task has {n} candidates")
    rng = np.random.default_rng([seed, CONDACC_SEED_OFFSET])
    ids = np.asarray(cand_ids)
    prompts = []
    for _ in range(sets):
        order = rng.permutation(n)
        short = -n % k
        if short:
            rest = order[: n - (n % k)]
            order = np.concatenate([order, rng.choice(rest, short, replace=False)])
        prompts += ids[order].reshape(-1, k).tolist()
    return prompts


def membership(candidates: pl.DataFrame, prompts: list[list[int]]) -> np.ndarray:
    """(prompts x candidates): how often each candidate is in each prompt; every candidate in one."""
    index = {c: i for i, c in enumerate(candidates["cand_id"].to_list())}
    members = np.zeros((len(prompts), len(index)))
    for p, ids in enumerate(prompts):
        for c in ids:
            members[p, index[c]] += 1  # a candidate twice in one prompt counts twice (never drawn so)
    if (members.sum(axis=0) == 0).any():
        raise ValueError("CondAcc: some candidates are in no prompt")
    return members


def condacc_table(candidates: pl.DataFrame, prompts: list[list[int]], per_prompt: dict[str, np.ndarray],
                  n_queries: int) -> pl.DataFrame:
    """Per candidate: each metric's mean over the prompts that contain it (`per_prompt[m]` is one
    value per prompt), the one-shot table's columns plus `n_prompts`."""
    members = membership(candidates, prompts)
    counts = members.sum(axis=0)
    return pl.DataFrame(
        {
            "cand_id": candidates["cand_id"],
            "label": candidates["label"],
            **{m: members.T @ per_prompt[m] / counts for m in QUALITY_METRICS},
            "n_queries": [n_queries] * len(candidates),
            "n_prompts": counts.astype(np.int64),
        }
    )


def candidate_outcomes(candidates: pl.DataFrame, prompts: list[list[int]],
                       outcomes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(candidates x queries) per outcome: its mean over the prompts that contain the candidate.
    Every prompt is scored on every query, so a candidate's CondAcc metric is the mean of its row:
    split halves of the queries measure CondAcc's reliability as they do the one-shot score's
    (over the queries, with the prompts held fixed)."""
    members = membership(candidates, prompts)
    counts = members.sum(axis=0)[:, None]
    return {name: members.T @ values / counts for name, values in outcomes.items()}


def prompt_outcomes(
    model, tokenizer, template, candidates: pl.DataFrame, queries: pl.DataFrame, prompts: list[list[int]],
    device: str, batch_tokens: int, kind: str = "classification", generation: dict | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Per (prompt, query): correct, correct_norm, gold_logprob, gold_logprob_norm (prompts x queries),
    through the one prompt builder the one-shot quality uses (`quality.encode_prompts`)."""
    text = dict(zip(candidates["cand_id"].to_list(), candidates["demonstration"].to_list()))
    demo_sets = [[text[c] for c in ids] for ids in prompts]
    if kind == "generation":
        return generation_outcomes(model, tokenizer, template, demo_sets, queries, device, batch_tokens,
                                   generation["max_new_tokens"], generation["stop"], progress,
                                   generation.get("min_new_tokens", 0))
    prefixes, q_ids, o_ids = encode_prompts(tokenizer, template, demo_sets, queries)
    lp = score_options(model, prefixes, q_ids, o_ids, device, tokenizer.pad_token_id, batch_tokens, progress)
    return outcomes(lp, option_lengths(o_ids, lp.shape[-1]), queries["gold_index"].to_numpy())


def score_condacc(
    model, tokenizer, template, candidates: pl.DataFrame, queries: pl.DataFrame, k: int, sets: int, seed: int,
    device: str, batch_tokens: int, kind: str = "classification", generation: dict | None = None,
    progress: bool = True,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(quality, outcomes, by_query): the per-candidate CondAcc table; one row per prompt and
    query with the prompt's demonstrations (`cand_ids`, in order) and the outcomes; and one row
    per candidate and query with the outcomes averaged over the candidate's prompts
    (`quality.by_query_table`'s columns, which reliability reads)."""
    prompts = draw_prompts(candidates["cand_id"].to_list(), k, sets, seed)
    outcomes = prompt_outcomes(model, tokenizer, template, candidates, queries, prompts, device, batch_tokens, kind,
                               generation, progress)
    per_prompt = {m: outcomes[o].mean(axis=1) for m, o in OUTCOME_OF.items()}
    quality = condacc_table(candidates, prompts, per_prompt, len(queries))
    n_p, n_q = len(prompts), len(queries)
    rows = pl.DataFrame(
        {
            "prompt_id": np.repeat(np.arange(n_p), n_q),
            "round": np.repeat(np.arange(n_p) // max(1, n_p // sets), n_q),
            "cand_ids": pl.Series([ids for ids in prompts for _ in range(n_q)], dtype=pl.List(pl.Int64)),
            "query_id": np.tile(np.arange(n_q), n_p),
            **{name: values.ravel() for name, values in outcomes.items()},
        }
    )
    by_query = by_query_table(candidates, queries, candidate_outcomes(candidates, prompts, outcomes))
    return quality, rows, by_query
