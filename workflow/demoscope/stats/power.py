"""What a run could have seen: the smallest detectable |rho|, and equivalence tests for "below the bound".

Both use Fisher's z of Spearman's rho with the Bonett-Wright (2000) standard error,
se(z) = sqrt((1 + rho^2 / 2) / (n - 3)), which is accurate for Spearman's rho of roughly
bivariate-normal data from n of about 10 up.

- Detectable |rho|: the true rho at which a test whose critical |rho| is `critical` (the
  family-wise threshold, e.g. the permutation null's 95th percentile of the maximum) rejects
  with the stated power. It solves atanh(r) - z_power * se(r) = atanh(critical) for r (the
  other tail adds nothing at any power worth asking for).
- Equivalence (TOST, Schuirmann 1987): |rho| < bound is established at level alpha when both
  one-sided tests reject: z(rho) > z(-bound) and z(rho) < z(bound), each at alpha. Its p-value
  is the larger of the two one-sided p-values. Claiming every test of a family is bounded is an
  intersection-union test and needs no multiplicity correction.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats


def bonett_wright_se(rho, n) -> np.ndarray:
    """Standard error of atanh(Spearman rho) at n pairs; NaN where n <= 3."""
    rho, n = np.asarray(rho, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 3, np.sqrt((1 + rho * rho / 2) / (n - 3)), np.nan)


def rejection_probability(rho: float, critical: float, n: int) -> float:
    """P(|rho_hat| > critical) when the true Spearman rho is `rho`, under the normal
    approximation of Fisher's z."""
    se = float(bonett_wright_se(rho, n))
    z, c = np.arctanh(np.clip(rho, -0.999999, 0.999999)), np.arctanh(min(critical, 0.999999))
    return float(stats.norm.sf((c - z) / se) + stats.norm.cdf((-c - z) / se))


def detectable_rho(critical: float, n: int, power: float = 0.8) -> float:
    """The smallest true |rho| detected with probability `power` by a test that rejects when
    |rho_hat| > critical; NaN when nothing is detectable (critical >= 1 or n <= 3)."""
    if not np.isfinite(critical) or critical >= 1 or n <= 3:
        return float("nan")
    critical = max(critical, 0.0)
    if rejection_probability(0.999, critical, n) < power:
        return float("nan")
    return float(optimize.brentq(lambda r: rejection_probability(r, critical, n) - power, 0.0, 0.999, xtol=1e-6))


def tost_pvalue(rho, n, bound: float) -> np.ndarray:
    """p-value of the two one-sided tests that -bound < rho < bound (small: established);
    NaN where rho is undefined or n <= 3."""
    rho, n = np.asarray(rho, dtype=float), np.asarray(n, dtype=float)
    se = bonett_wright_se(rho, n)
    z = np.arctanh(np.clip(rho, -0.999999, 0.999999))
    edge = np.arctanh(bound)
    with np.errstate(invalid="ignore", divide="ignore"):
        above_lower = stats.norm.sf((z + edge) / se)  # H0: rho <= -bound
        below_upper = stats.norm.cdf((z - edge) / se)  # H0: rho >= bound
    return np.where(np.isnan(rho) | np.isnan(se), np.nan, np.maximum(above_lower, below_upper))


def tost_power(rho: float, n: int, bound: float, alpha: float) -> float:
    """Probability that TOST establishes |rho| < bound when the true rho is `rho` (normal
    approximation of Fisher's z, the standard error taken at the true rho)."""
    se = float(bonett_wright_se(rho, n))
    z, edge, crit = np.arctanh(rho), np.arctanh(bound), stats.norm.ppf(1 - alpha)
    upper, lower = edge - crit * se, -edge + crit * se
    if upper <= lower:
        return 0.0
    return float(stats.norm.cdf((upper - z) / se) - stats.norm.cdf((lower - z) / se))
