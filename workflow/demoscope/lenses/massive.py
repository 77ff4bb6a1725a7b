"""The massive-activation lens of Sun et al. (2024), "Massive Activations in LLMs".

An activation is massive when its magnitude exceeds `threshold` (100) and is
at least `ratio` (1,000) times the median magnitude of the same hidden state
(here: all tokens x dims of the demonstration at one layer).
"""

from __future__ import annotations

import numpy as np

MASSIVE = ("top1", "top2", "top3", "median_abs", "top1_ratio", "massive_count")


def massive_features(tokens: np.ndarray, threshold: float = 100.0, ratio: float = 1000.0) -> dict:
    """Top-1/2/3 magnitudes, their ratio to the median, massive count, and where they sit."""
    magnitude = np.abs(np.asarray(tokens, dtype=np.float64))
    flat = magnitude.ravel()
    if flat.size == 0:  # an empty segment: nothing to describe, and no zero pretending otherwise
        return {**dict.fromkeys(("top1", "top2", "top3", "median_abs", "top1_ratio"), float("nan")),
                "massive_count": float("nan"), "top1_dim": -1, "massive_dims": []}
    k = min(3, flat.size)
    top = np.sort(np.partition(flat, flat.size - k)[flat.size - k :])[::-1]
    top = np.concatenate([top, np.full(3 - k, np.nan)])
    median = float(np.median(flat))
    is_massive = (magnitude > threshold) & (magnitude >= ratio * median)
    dims = np.unique(np.nonzero(is_massive)[-1])
    return {
        "top1": float(top[0]),
        "top2": float(top[1]),
        "top3": float(top[2]),
        "median_abs": median,
        "top1_ratio": float(top[0] / median) if median > 0 else float("nan"),
        "massive_count": float(is_massive.sum()),  # float: NaN where a segment is empty
        "top1_dim": int(np.unravel_index(np.argmax(magnitude), magnitude.shape)[-1]),
        "massive_dims": dims.astype(int).tolist(),
    }
