"""Quality metrics too degenerate to correlate: a rank correlation with them says nothing.

When 11 of 12 candidates score 0, "rho = -1 with interval [-1, -1]" is one candidate's story.
A metric with fewer than three distinct values over the candidates, or where one value is held
by more than `share` of them, is reported (its distribution, its reliability) but never enters
a family of tests.
"""

from __future__ import annotations

import numpy as np


def degenerate_reason(values, share: float = 0.8) -> str | None:
    """Why a metric's values over candidates are degenerate, or None when they are not."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "no finite value"
    distinct, counts = np.unique(finite, return_counts=True)
    if distinct.size < 3:
        return f"{distinct.size} distinct value{'s' if distinct.size != 1 else ''}"
    top = counts.max() / finite.size
    if top > share:
        return f"{top:.0%} of candidates share the value {distinct[counts.argmax()]:g}"
    return None


def usable_metrics(quality, metrics: list[str], share: float = 0.8) -> list[str]:
    """The metrics of a per-candidate quality table that may be correlated, in their order."""
    return [m for m in metrics if degenerate_reason(quality[m].to_numpy(), share) is None]
