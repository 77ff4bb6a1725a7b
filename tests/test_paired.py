"""The paired comparison of strategies with random: hand computations, its calibration and power
by simulation (seeded, vectorised), the planning arithmetic, and the verdict rule."""

import math

import numpy as np
import pytest
from scipy import stats

from demoscope.stats import paired

# What the simulations plant, measured on SST-2 with the embedded model (docs/selection.md):
# query-level accuracy spread and the spread of random k-sets' accuracy over the same queries.
SET_SD = 0.13


def simulate(rng, comparisons: int, queries: int, seeds: int, effect: float = 0.0, set_sd: float = SET_SD):
    """Correctness of a strategy (comparisons x Q) and of `seeds` random sets (comparisons x seeds
    x Q) on shared queries: query q is answered correctly with probability p_q + (the set's
    effect), p_q ~ U(0.2, 0.8); each random set's effect ~ N(0, set_sd), the strategy's is
    `effect` (0: no better than random selection on average)."""
    p = rng.uniform(0.2, 0.8, (comparisons, 1, queries))
    shift = np.concatenate([np.full((comparisons, 1, 1), effect), rng.normal(0, set_sd, (comparisons, seeds, 1))], 1)
    correct = rng.random((comparisons, seeds + 1, queries)) < np.clip(p + shift, 0, 1)
    return correct[:, 0], correct[:, 1:]


def test_paired_test_by_hand():
    strategy = np.array([1, 1, 0, 1, 0, 1, 1, 0], float)
    random = np.array([[1, 0, 0, 1, 1, 0, 1, 0], [0, 0, 0, 1, 1, 1, 1, 1]], float)
    got = paired.paired_test(strategy, random, alpha=0.05)
    d = strategy - random.mean(0)
    q_var = (((d - d.mean()) ** 2).sum() + 1 + d.mean() ** 2) / 8 / 8
    acc = random.mean(1)
    set_var = max(acc.var(ddof=1) - random.var(0, ddof=1).mean() / 8, 0.0)
    se = math.sqrt(q_var + set_var / 2)
    df = 1  # min(queries, seeds) - 1
    assert got["diff"] == pytest.approx(d.mean())
    assert got["se"] == pytest.approx(se) and got["df"] == pytest.approx(df)
    assert got["p"] == pytest.approx(2 * stats.t.sf(abs(d.mean()) / se, df))
    half = stats.t.ppf(0.975, df) * se
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((max(d.mean() - half, -1), min(d.mean() + half, 1)))
    assert got["mdd"] == pytest.approx((stats.t.ppf(0.975, df) + stats.t.ppf(0.8, df)) * se)


def test_one_seed_many_queries_is_mcnemar():
    """One seed: the discordant queries carry the test, as in McNemar's (uncorrected) z-test."""
    b, c, q = 40, 18, 400  # strategy right where random is wrong, and the reverse
    strategy = np.r_[np.ones(b), np.zeros(c), np.ones(150), np.zeros(q - b - c - 150)]
    random = np.r_[np.zeros(b), np.ones(c), np.ones(150), np.zeros(q - b - c - 150)][None]
    got = paired.paired_test(strategy, random)
    mcnemar = 2 * stats.norm.sf(abs(b - c) / math.sqrt(b + c))
    assert got["p"] == pytest.approx(mcnemar, abs=0.005)
    assert np.isnan(got["set_sd"])  # one seed: the random sets' spread is unknown


def test_agreement_everywhere_is_never_certain():
    """Identical answers (and identical seeds) give a difference of 0 with an interval that has
    width, never [x, x]; on few queries the verdict is underpowered."""
    answers = np.tile([1.0, 0.0], 6)
    got = paired.paired_test(answers, np.stack([answers, answers]))
    assert got["diff"] == 0 and got["ci_low"] < -0.05 and got["ci_high"] > 0.05 and got["p"] == pytest.approx(1.0)
    assert paired.verdict(12, got["p"], got["mdd"], 0.05) == paired.UNDERPOWERED


def test_false_positive_rate_under_no_difference():
    """400 comparisons of a strategy no better than random selection: rejections at alpha stay
    within alpha + 0.03, with random sets that differ (the default three seeds) and without."""
    rng = np.random.default_rng(0)
    for seeds, queries, set_sd in ((3, 300, SET_SD), (3, 60, SET_SD), (20, 300, SET_SD), (3, 300, 0.0), (1, 300, 0.0)):
        strategy, random = simulate(rng, 400, queries, seeds, set_sd=set_sd)
        rate = (paired.paired_test(strategy, random)["p"] < 0.05).mean()
        assert rate <= 0.08, (seeds, queries, set_sd, rate)


def test_ignoring_the_random_sets_spread_would_be_anticonservative():
    """Why the seeds' part is in the standard error: with the measured spread of random sets and
    three seeds, a test over queries alone rejects a true null far more often than alpha."""
    rng = np.random.default_rng(1)
    strategy, random = simulate(rng, 400, 300, 3)
    d = paired.differences(strategy, random)
    queries_only = 2 * stats.t.sf(np.abs(d.mean(-1)) / (d.std(-1, ddof=1) / math.sqrt(300)), 299)
    assert (queries_only < 0.05).mean() > 0.3
    assert (paired.paired_test(strategy, random)["p"] < 0.05).mean() <= 0.08


def test_power_for_ten_points_at_the_recommended_size():
    """The recommended size (docs/selection.md: 400 test queries, 30 random seeds) detects a
    planted 10-point difference in at least 80% of comparisons, within Monte Carlo error
    (1,000 comparisons: standard error 0.013), and the mdd column agrees with it."""
    rng = np.random.default_rng(2)
    strategy, random = simulate(rng, 1000, 400, 30, effect=0.10)
    got = paired.paired_test(strategy, random)
    power = (got["p"] < 0.05).mean()
    assert power >= 0.8 - 2 * 0.013, power
    assert np.median(got["mdd"]) <= 0.10 + 0.01
    # The default three seeds cannot: the random sets' spread alone swamps 10 points.
    strategy, random = simulate(rng, 1000, 300, 3, effect=0.10)
    assert (paired.paired_test(strategy, random)["p"] < 0.05).mean() < 0.5


def test_queries_needed_matches_a_direct_simulation():
    """Connor's formula for one seed: at the size it gives, a simulated McNemar design with that
    discordance has power 0.8 within 0.05."""
    delta, discordance = 0.10, 0.25
    n = paired.queries_needed(delta, discordance)
    assert n == math.ceil((1.959964 * 0.5 + 0.841621 * math.sqrt(0.25 - 0.01)) ** 2 / 0.01)
    rng = np.random.default_rng(3)
    # per query: strategy wins (prob (psi + delta)/2), loses ((psi - delta)/2), or they agree
    outcome = rng.choice(3, size=(2000, n), p=[(discordance + delta) / 2, (discordance - delta) / 2, 1 - discordance])
    strategy = (outcome == 0).astype(float)
    random = (outcome == 1).astype(float)[:, None]
    power = (paired.paired_test(strategy, random)["p"] < 0.05).mean()
    assert power == pytest.approx(0.8, abs=0.05)
    assert paired.min_queries(0.10, 0.05) == 77 == paired.queries_needed(0.10, 0.10)
    with pytest.raises(ValueError, match="discordance"):
        paired.queries_needed(0.2, 0.1)


@pytest.mark.parametrize(
    ("n", "padj", "mdd", "expected"),
    [
        (76, 0.001, 0.05, paired.UNDERPOWERED),  # too few queries for any test of 10 points
        (300, 0.01, 0.30, paired.DISTINGUISHABLE),  # significant: power no longer matters
        (300, 0.40, 0.30, paired.UNDERPOWERED),  # not significant, but 10 points was undetectable
        (300, 0.40, 0.08, paired.NOT_DISTINGUISHABLE),
        (300, float("nan"), 0.08, paired.UNDERPOWERED),
    ],
)
def test_verdict_rule(n, padj, mdd, expected):
    assert paired.verdict(n, padj, mdd, 0.05) == expected
