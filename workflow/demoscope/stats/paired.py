"""Paired comparison of a selection strategy with random on the same test queries, its power,
and the verdict the strategies table gives each strategy.

Every strategy instance is scored on the same test queries, so the comparison is paired by
query: for test query q, d_q = (strategy correct on q) - (mean over the random seeds of
"seed correct on q"), in [-1, 1]. Their mean is the strategy's accuracy minus random's mean
accuracy. Its standard error has two parts:

- the test queries (the sampling unit, as in McNemar's test, which this matches for one seed
  and many queries): var(d_q) / Q. So that a strategy that answers every query as random does
  never gets a zero-width interval, var(d_q) is padded with one pseudo-query whose difference
  is +1 half the time and -1 half the time (Agresti and Min 2005 add half a count to each cell
  of McNemar's table for the same reason): (sum (d_q - mean)^2 + 1 + mean^2) / Q.
- the random sets: random's accuracy differs from one drawn k-set to the next (on SST-2 with
  the embedded model, three seeds scored 0.53, 0.78 and 0.73 on the same 300 queries), so the
  mean of R seeds estimates random selection's accuracy with variance sigma_set^2 / R. The
  between-set variance sigma_set^2 is the variance of the seeds' accuracies less the part
  query-level disagreement alone puts there (mean over queries of the variance across seeds,
  divided by Q), at least 0. With one seed it cannot be estimated and is left out: the test is
  then conditional on that one random set.

The test is t = mean(d) / se, two-sided, with min(Q, R) - 1 degrees of freedom (Q - 1 with
one seed): the conservative choice for a standard error that sums an estimate on Q - 1 and one
on R - 1 degrees of freedom (Welch-Satterthwaite's estimated df was liberal in simulation,
rejecting a true null 9% of the time at alpha 0.05 with three seeds). The strategy's own set is fixed (it is what
the strategy picks), so nothing is added for it.

Power: the smallest difference detectable with 80% power at alpha is (t_{1-alpha/2} +
t_{0.8}) * se. For planning, the queries needed for a difference `delta` at discordance psi =
E[d^2] (one seed: the share of queries where strategy and random disagree) follow Connor's
(1987) formula for McNemar's test: Q = (z_{1-alpha/2} sqrt(psi) + z_{power} sqrt(psi -
delta^2))^2 / delta^2. Its smallest value, at psi = delta (the strategy wins on a delta share of
the queries and loses on none), is (z_{1-alpha/2} + z_{power} sqrt(1 - delta))^2 / delta: on
fewer queries no test can detect delta with 80% power (77 queries for 10 points at alpha
0.05), and the verdict says `underpowered` there whatever the p-value.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

EFFECT = 0.10  # the accuracy difference (10 points) a comparison must be able to detect
POWER = 0.80

BASELINE = "baseline"
DISTINGUISHABLE = "distinguishable from random"
NOT_DISTINGUISHABLE = "not distinguishable"
UNDERPOWERED = "underpowered"
NO_RANDOM = "no random baseline"
VERDICTS = (BASELINE, DISTINGUISHABLE, NOT_DISTINGUISHABLE, UNDERPOWERED, NO_RANDOM)


def differences(strategy: np.ndarray, random: np.ndarray) -> np.ndarray:
    """d_q: the strategy's correctness (... x Q) minus the random seeds' mean correctness (... x seeds x Q)."""
    return np.asarray(strategy, dtype=float) - np.asarray(random, dtype=float).mean(-2)


def set_variance(random: np.ndarray) -> np.ndarray:
    """The between-set variance of random's accuracy (... x seeds x Q -> ...): the variance of
    the seeds' accuracies less what query-level disagreement alone gives it (the mean over
    queries of the variance across seeds, over Q), at least 0; NaN with one seed."""
    random = np.asarray(random, dtype=float)
    seeds, q = random.shape[-2:]
    if seeds < 2:
        return np.full(random.shape[:-2], np.nan)
    between = random.mean(-1).var(-1, ddof=1)
    within = random.var(-2, ddof=1).mean(-1)
    return np.maximum(between - within / q, 0.0)


def paired_test(strategy: np.ndarray, random: np.ndarray, alpha: float = 0.05, power: float = POWER) -> dict[str, np.ndarray]:
    """The paired test of strategy (... x Q correct) against the random seeds (... x seeds x Q):
    `diff`, `ci_low`, `ci_high` (the 1 - alpha interval, which excludes 0 exactly when p <
    alpha), `p` (two-sided), `mdd` (the difference detectable with `power` at `alpha` and the
    observed spread), `se`, `df` and `set_sd` (the between-set sd of random's accuracy).
    Leading axes are separate comparisons (simulations)."""
    d = differences(strategy, random)
    seeds, q = np.shape(random)[-2:]
    if q < 2:
        nan = np.full(d.shape[:-1], np.nan)
        return {"diff": d.mean(-1) if q else nan, **{k: nan for k in ("ci_low", "ci_high", "p", "mdd", "se", "df", "set_sd")}}
    mean = d.mean(-1)
    padded = ((d - mean[..., None]) ** 2).sum(-1) + 1.0 + mean**2  # + the pseudo-query (+-1)
    query_var = padded / q / q
    set_var = set_variance(random)
    seed_var = np.nan_to_num(set_var) / seeds  # one seed: unknown, left out (the docs say so)
    se = np.sqrt(query_var + seed_var)
    # The conservative (Hsu-Scheffe) choice for a sum of two variance estimates: the smaller of
    # their degrees of freedom. Welch-Satterthwaite's estimated df rejects a true null in 9% of
    # simulated comparisons at three seeds (tests/test_paired.py): when the seeds happen to
    # agree, the standard error and its df err in the same direction.
    df = np.full(mean.shape, float(q - 1 if seeds < 2 else min(q, seeds) - 1))
    critical = stats.t.ppf(1 - alpha / 2, df)
    return {
        "diff": mean,
        "ci_low": np.maximum(mean - critical * se, -1.0),  # a difference of accuracies lies in [-1, 1]
        "ci_high": np.minimum(mean + critical * se, 1.0),
        "p": 2 * stats.t.sf(np.abs(mean) / se, df),
        "mdd": (critical + stats.t.ppf(power, df)) * se,
        "se": se,
        "df": df,
        "set_sd": np.sqrt(set_var),
    }


def queries_needed(delta: float, discordance: float, alpha: float = 0.05, power: float = POWER) -> int:
    """Test queries for a paired comparison to detect `delta` with `power` at two-sided `alpha`,
    when E[d^2] (one seed: the share of queries where the two disagree) is `discordance`
    (Connor 1987). Needs delta <= discordance: a difference larger than the disagreement is
    impossible."""
    if not 0 < delta <= discordance <= 1:
        raise ValueError(f"need 0 < delta <= discordance <= 1, got delta={delta}, discordance={discordance}")
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    return math.ceil((za * math.sqrt(discordance) + zb * math.sqrt(discordance - delta**2)) ** 2 / delta**2)


def min_queries(delta: float = EFFECT, alpha: float = 0.05, power: float = POWER) -> int:
    """The fewest queries on which a paired test could detect `delta` with `power`: Connor's
    formula at its most favourable discordance, discordance = delta (the strategy wins on a
    delta share of the queries and loses on none): (z_{1-alpha/2} + z_power sqrt(1 - delta))^2 / delta."""
    return queries_needed(delta, delta, alpha, power)


def verdict(n_queries: int, padj: float, mdd: float, alpha: float, effect: float = EFFECT) -> str:
    """A compared strategy's verdict: `underpowered` on fewer than `min_queries` queries (even
    a small p-value there rests on a handful of discordant queries); `distinguishable from
    random` when the BH-adjusted p-value is below alpha; `underpowered` when the run could not
    have detected `effect` (mdd > effect); otherwise `not distinguishable`."""
    if n_queries < min_queries(effect, alpha) or not np.isfinite(padj):
        return UNDERPOWERED
    if padj < alpha:
        return DISTINGUISHABLE
    return UNDERPOWERED if not mdd <= effect else NOT_DISTINGUISHABLE
