"""Paired comparison of two sets of per-example scores: is the change more than noise?

A minimal version of the comparison statistics (the compare issue builds the full one in this
same place): a paired bootstrap confidence interval of the mean per-example difference, and a
two-sided bootstrap p-value (sign-flip test on the paired differences).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedStats:
    n: int  # examples scored on both sides
    excluded: int  # examples scored on one side only (left out)
    mean_delta: float  # mean of after − before
    ci_low: float
    ci_high: float
    p_value: float
    test: str  # which test produced p_value
    significant: bool  # the interval excludes zero


def paired_comparison(
    before: dict[str, float],
    after: dict[str, float],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> PairedStats:
    """Compare `after` with `before` on the examples (keys) both scored."""
    shared = sorted(set(before) & set(after))
    excluded = len(set(before) ^ set(after))
    if not shared:
        return PairedStats(0, excluded, 0.0, 0.0, 0.0, 1.0, "paired bootstrap", False)
    deltas = np.array([after[k] - before[k] for k in shared], dtype=float)
    mean = float(deltas.mean())
    if np.allclose(deltas, deltas[0]):  # no spread: the interval is the point itself
        p = 1.0 if deltas[0] == 0 else 0.0
        sig = deltas[0] != 0 and len(shared) > 1
        return PairedStats(len(shared), excluded, mean, mean, mean, p, "paired bootstrap", sig)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(deltas), size=(resamples, len(deltas)))
    means = deltas[picks].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = (float(v) for v in np.quantile(means, [alpha, 1 - alpha]))
    signs = rng.choice((-1.0, 1.0), size=(resamples, len(deltas)))
    flipped = np.abs((signs * deltas).mean(axis=1))
    p_value = float((np.sum(flipped >= abs(mean) - 1e-12) + 1) / (resamples + 1))
    significant = low > 0 or high < 0
    return PairedStats(
        len(shared), excluded, mean, low, high, p_value, "paired bootstrap", significant
    )
