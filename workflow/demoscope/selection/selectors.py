"""Demonstration selectors: arrays in, candidate ids out.

Every selector sees only what it is given (scores, embeddings, the candidates' labels for
balancing); none of them is ever handed a test label. Ids are row indices of the arrays, in
selection order; ties always go to the lower index, so every result is deterministic.

Label balance is a constraint inside each selector, not a filter after it: `Quota` splits the
k picks over the labels as evenly as the pool allows (`sampling.allocate`), and a selector
only considers candidates whose label still has room. Top-k then walks its ranking, and the
greedy selectors (k-center, vote-k) take the best candidate among those still allowed.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from demoscope.data.sampling import allocate


class Quota:
    """How many more picks each label may take; no limit when `labels` is None."""

    def __init__(self, labels, k: int, pool=None):
        self.labels = None if labels is None else np.asarray(labels).astype(str)
        if self.labels is None:
            self.left = None
            return
        members = self.labels if pool is None else self.labels[np.asarray(pool, dtype=int)]
        self.left = allocate(k, dict(Counter(members.tolist())))

    def allowed(self) -> np.ndarray | None:
        """Boolean mask over candidates whose label still has room (None: all)."""
        if self.left is None:
            return None
        open_labels = [label for label, n in self.left.items() if n > 0]
        return np.isin(self.labels, open_labels)

    def allows(self, i: int) -> bool:
        return self.left is None or self.left.get(self.labels[i], 0) > 0

    def take(self, i: int) -> None:
        if self.left is not None:
            self.left[self.labels[i]] -= 1


def _take_in_order(order, k: int, labels, what: str) -> np.ndarray:
    order = np.asarray(order, dtype=int)
    quota = Quota(labels, k, pool=order)
    chosen = []
    for i in order:
        if len(chosen) == k:
            break
        if quota.allows(i):
            chosen.append(int(i))
            quota.take(i)
    if len(chosen) < k:
        raise ValueError(f"{what}: only {len(chosen)} candidates can be chosen, k = {k}")
    return np.array(chosen, dtype=int)


def random_k(n: int, k: int, rng: np.random.Generator, labels=None) -> np.ndarray:
    """k candidates in a random order (label-balanced when labels are given)."""
    return _take_in_order(rng.permutation(n), k, labels, "random")


def top_k(scores, k: int, labels=None, largest: bool = True, tiebreak=None) -> np.ndarray:
    """The k candidates with the largest (or smallest) finite score, best first. `tiebreak`
    orders equal scores (in the same direction); remaining ties go to the lower index.
    Candidates whose score is NaN are never chosen."""
    scores = np.asarray(scores, dtype=float)
    sign = -1.0 if largest else 1.0
    keys = [np.arange(len(scores))]
    if tiebreak is not None:
        tiebreak = np.asarray(tiebreak, dtype=float)
        keys.append(sign * np.where(np.isnan(tiebreak), sign * np.inf, tiebreak))  # NaN breaks ties last
    keys.append(sign * scores)
    order = np.lexsort(keys)
    return _take_in_order(order[np.isfinite(scores[order])], k, labels, "top-k")


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=float)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def nearest(candidates: np.ndarray, queries: np.ndarray, k: int, labels=None, allowed=None) -> np.ndarray:
    """KATE (Liu et al. 2022): per query, the k candidates of highest cosine similarity,
    shape (queries, k). Each row is ordered from the least to the most similar, so that in a
    prompt the most similar demonstration sits next to the query (KATE's reversed order).
    `allowed` (queries x candidates, boolean) leaves out what a query may not take."""
    similarity = unit(queries) @ unit(candidates).T
    if allowed is not None:
        similarity = np.where(allowed, similarity, np.nan)
    return np.stack([top_k(row, k, labels)[::-1] for row in similarity])


def k_center(points: np.ndarray, k: int, labels=None) -> np.ndarray:
    """Greedy k-center (Sener & Savarese 2018) under Euclidean distance: start from the
    candidate nearest the pool's mean, then repeatedly add the candidate farthest from its
    nearest chosen one."""
    points = np.asarray(points, dtype=float)
    quota = Quota(labels, k)
    distance = np.linalg.norm(points - points.mean(axis=0), axis=1)
    chosen: list[int] = []
    for _ in range(k):
        # Start: nearest the mean; afterwards: farthest from the chosen set.
        score = -distance if not chosen else distance
        score = np.where(_open(quota, chosen, len(points)), score, -np.inf)
        pick = int(np.argmax(score))
        if not np.isfinite(score[pick]):
            raise ValueError(f"k-center: only {len(chosen)} candidates can be chosen, k = {k}")
        chosen.append(pick)
        quota.take(pick)
        reach = np.linalg.norm(points - points[pick], axis=1)
        distance = reach if len(chosen) == 1 else np.minimum(distance, reach)
    return np.array(chosen, dtype=int)


def vote_k(points: np.ndarray, k: int, neighbours: int, rho: float = 10.0, labels=None) -> np.ndarray:
    """Fast vote-k (Su et al. 2022): every candidate votes for its `neighbours` most
    cosine-similar other candidates; then k times, take the candidate with the largest vote
    score, where a vote from candidate v counts rho ** -(how many chosen candidates v already
    voted for) and chosen candidates' own votes no longer count. Dense candidates that are far
    from those already chosen win, which spreads the picks over the pool's dense regions."""
    n = len(points)
    similarity = unit(points) @ unit(points).T
    np.fill_diagonal(similarity, -np.inf)
    votes = np.zeros((n, n))  # votes[v, u] = 1: v votes for u
    top = np.argsort(-similarity, axis=1, kind="stable")[:, : min(neighbours, n - 1)]
    votes[np.repeat(np.arange(n), top.shape[1]), top.ravel()] = 1.0
    quota = Quota(labels, k)
    covered = np.zeros(n)
    chosen: list[int] = []
    for _ in range(k):
        weight = rho ** -covered
        weight[chosen] = 0.0
        score = np.where(_open(quota, chosen, n), weight @ votes, -np.inf)
        pick = int(np.argmax(score))
        if not np.isfinite(score[pick]):
            raise ValueError(f"vote-k: only {len(chosen)} candidates can be chosen, k = {k}")
        chosen.append(pick)
        quota.take(pick)
        covered += votes[:, pick]
    return np.array(chosen, dtype=int)


def _open(quota: Quota, chosen: list[int], n: int) -> np.ndarray:
    """Candidates not yet chosen whose label still has room."""
    free = np.ones(n, dtype=bool)
    free[chosen] = False
    allowed = quota.allowed()
    return free if allowed is None else free & allowed
