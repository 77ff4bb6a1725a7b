"""The per-query retrievers researchers compare against (OpenICL's BM25, DPP and MDL; ConE).

Arrays in, candidate row indices out, like `selectors`: `allowed` (queries x candidates,
boolean) says which candidates each test query may take (a candidate that duplicates the test
query never may; see `contamination`), `labels` balances the k picks as the other selectors do.
The model-reading parts of MDL and ConE take their scores from `lmscore`; here they are plain
arrays, so that each rule can be checked against a brute-force reading of its definition.
"""

from __future__ import annotations

import re

import numpy as np

from demoscope.selection import selectors

# Lower-cased runs of letters and digits: OpenICL splits with NLTK's word tokenizer; this keeps
# the words and drops punctuation, with no stop-word list and no stemming.
WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def bm25_scores(candidate_texts: list[str], query_texts: list[str], k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """(queries, candidates) BM25 scores of every candidate for every query, the candidates
    being the corpus (bm25s, Lucene's BM25: idf = ln(1 + (N - df + 0.5) / (df + 0.5)))."""
    import bm25s

    corpus = [words(t) for t in candidate_texts]
    index = bm25s.BM25(k1=k1, b=b, method="lucene")
    index.index(corpus, show_progress=False)
    return np.stack([np.asarray(index.get_scores(words(q)), dtype=float) for q in query_texts]) if query_texts else (
        np.zeros((0, len(candidate_texts)))
    )


def top_n(similarity: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Row indices of the n most similar allowed candidates, most similar first (ties: lower
    index), the shortlist that DPP, MDL and ConE work on."""
    score = np.where(allowed, similarity, -np.inf) if allowed is not None else np.asarray(similarity, dtype=float)
    order = np.lexsort((np.arange(len(score)), -score))
    return np.array([i for i in order[:n] if np.isfinite(score[i])], dtype=int)


def dpp_kernel(query: np.ndarray, shortlist: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(kernel L, relevance r) of OpenICL's DPP retriever over unit vectors: cosine
    similarities mapped to [0, 1] by (s + 1) / 2, relevance r_i = exp(rel_i / (2 * scale)) and
    L = diag(r) S diag(r), quality x similarity x quality. A small scale favours relevance
    over diversity."""
    query, shortlist = selectors.unit(query), selectors.unit(shortlist)
    relevance = np.exp(((shortlist @ query + 1) / 2) / (2 * scale))
    similarity = (shortlist @ shortlist.T + 1) / 2
    return relevance[:, None] * similarity * relevance[None, :], relevance


def greedy_map(kernel: np.ndarray, k: int, labels=None) -> np.ndarray:
    """Greedy MAP inference of a k-DPP (Chen et al. 2018's incremental Cholesky): k times, add
    the item that most increases log det L_S, among items whose label still has room. Items
    whose gain is not positive (the kernel is singular on them) are never added."""
    n = len(kernel)
    quota = selectors.Quota(labels, k)
    gains = np.diag(kernel).astype(float).copy()  # d_i^2: det(L_{S+i}) / det(L_S)
    factors = np.zeros((k, n))
    chosen: list[int] = []
    for step in range(k):
        open_ = selectors._open(quota, chosen, n)
        score = np.where(open_ & (gains > 1e-12), gains, -np.inf)
        pick = int(np.argmax(score))
        if not np.isfinite(score[pick]):
            raise ValueError(f"dpp: only {len(chosen)} candidates can be chosen, k = {k}")
        chosen.append(pick)
        quota.take(pick)
        # e_i = (L_{pick,i} - <c_pick, c_i>) / d_pick; d_i^2 -= e_i^2
        e = (kernel[pick] - factors[:step, pick] @ factors[:step]) / np.sqrt(gains[pick])
        factors[step] = e
        gains = gains - e**2
    return np.array(chosen, dtype=int)


def mdl_orderings(shortlist: np.ndarray, k: int, subsets: int, rng: np.random.Generator, labels=None) -> list[np.ndarray]:
    """OpenICL's MDL candidates for one query: the k most similar of the shortlist (most
    similar last, as `similarity` orders them), then `subsets - 1` random k-subsets of the
    shortlist, each in the random order it was drawn in (label-balanced when labels are given).
    `shortlist` is most similar first; the result holds candidate row indices."""
    labels_of = None if labels is None else np.asarray(labels)[shortlist]
    first = selectors._take_in_order(np.arange(len(shortlist)), k, labels_of, "mdl")[::-1]
    out = [shortlist[first]]
    for _ in range(subsets - 1):
        out.append(shortlist[selectors.random_k(len(shortlist), k, rng, labels_of)])
    return out


def label_entropy(query_lp: np.ndarray, query_len: np.ndarray, option_lp: np.ndarray, option_len: np.ndarray) -> np.ndarray:
    """OpenICL's MDL score: each option's probability is proportional to exp(-mean token
    cross-entropy of [query; option]) after the demonstrations, normalised over the present
    (non-NaN) options; returns the entropy (nats) of that distribution. Shapes: query_* (rows,),
    option_* (rows, options)."""
    mean_ce = -(query_lp[:, None] + option_lp) / (query_len[:, None] + option_len)
    logit = np.where(np.isnan(mean_ce), -np.inf, -mean_ce)
    logit = logit - logit.max(axis=1, keepdims=True)
    p = np.exp(logit)
    p /= p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
