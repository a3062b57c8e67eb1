"""Paired statistics for comparing two runs of a prompt on the same examples.

Pure (numpy and the standard library only; no model, history or LSP). Used by the version
comparison, the baseline check and the optimizer (issue 14); keep `paired_comparison` stable.

Per example id the caller gives one score per side (the mean over repeats). Only ids both
sides have are paired; the others are excluded and counted. On the per-example differences
d = after − before:

- the mean delta, with a percentile bootstrap confidence interval (resampling examples with
  replacement, `resamples` times, seeded so the same data always gives the same interval; the
  resampled means are widened by √(n/(n−1)), the sample-variance correction, because the plain
  percentile interval is too narrow for the 10–50 examples prompts usually have);
- a two-sided sign-flip permutation test of "mean delta = 0": under the null each difference is
  as likely positive as negative, so the p-value is the share of the 2^n sign assignments whose
  mean is at least as far from 0 as the observed one. Exact (all 2^n) up to
  `EXACT_PERMUTATION_MAX_N` examples, Monte Carlo beyond (with the observed assignment counted,
  so p is never 0).

`significant` means the interval excludes 0 and the test agrees (p < 1 − confidence). With all
differences 0 (or every pair tied) the delta is 0, the interval [0, 0] and p = 1: nothing to
detect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EXACT_PERMUTATION_MAX_N = 16  # 2^16 = 65 536 sign vectors: exact and still fast
TEST_NAME_EXACT = "sign-flip permutation (exact)"
TEST_NAME_MONTE_CARLO = "sign-flip permutation (Monte Carlo)"
ZERO = 1e-12  # differences smaller than this are ties


@dataclass(frozen=True)
class PairedStats:
    """How two runs on the same examples differ (after − before)."""

    n: int  # examples both sides scored
    excluded: int  # examples only one side scored
    mean_before: float | None
    mean_after: float | None
    mean_delta: float | None  # None when no example is paired
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    test: str
    confidence: float
    sd_delta: float | None  # sample standard deviation of the differences (n ≥ 2)
    improved: int  # examples whose score went up
    regressed: int
    unchanged: int

    @property
    def significant(self) -> bool:
        """The confidence interval excludes 0 and the exact test agrees (p < 1 − confidence).

        The interval alone is a little liberal on few examples (about 7–10% false positives
        at n = 14 for a nominal 5%, see bench/stats_calibration.py); the sign-flip test is
        exact, so requiring both keeps the false-positive rate at or under the nominal level."""
        if self.ci_low is None or self.ci_high is None or self.p_value is None:
            return False
        excludes_zero = self.ci_low > 0 or self.ci_high < 0
        return excludes_zero and self.p_value < 1 - self.confidence

    @property
    def direction(self) -> int:
        """+1 significantly better, −1 significantly worse, 0 within noise."""
        if not self.significant or self.mean_delta is None:
            return 0
        return 1 if self.mean_delta > 0 else -1

    def examples_needed(self, power: float = 0.8, alpha: float | None = None) -> int | None:
        """See module-level `examples_needed`; None when it cannot be estimated."""
        return examples_needed(
            self.mean_delta, self.sd_delta, power=power, alpha=alpha or 1 - self.confidence
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "excluded": self.excluded,
            "mean_before": self.mean_before,
            "mean_after": self.mean_after,
            "mean_delta": self.mean_delta,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "confidence": self.confidence,
            "p_value": self.p_value,
            "test": self.test,
            "significant": self.significant,
            "sd_delta": self.sd_delta,
            "improved": self.improved,
            "regressed": self.regressed,
            "unchanged": self.unchanged,
            "examples_needed": self.examples_needed(),
        }


def paired_comparison(
    before: dict[str, float],
    after: dict[str, float],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> PairedStats:
    """Compare per-example scores (id → score, already the mean over repeats) of two runs."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    shared = sorted(set(before) & set(after))
    excluded = len(set(before) ^ set(after))
    if not shared:
        return PairedStats(
            n=0,
            excluded=excluded,
            mean_before=None,
            mean_after=None,
            mean_delta=None,
            ci_low=None,
            ci_high=None,
            p_value=None,
            test=TEST_NAME_EXACT,
            confidence=confidence,
            sd_delta=None,
            improved=0,
            regressed=0,
            unchanged=0,
        )
    values_before = np.array([before[key] for key in shared], dtype=float)
    values_after = np.array([after[key] for key in shared], dtype=float)
    deltas = values_after - values_before
    deltas[np.abs(deltas) < ZERO] = 0.0
    n = len(shared)
    rng = np.random.default_rng(seed)
    low, high = bootstrap_interval(deltas, confidence, resamples, rng)
    p_value, test = sign_flip_p_value(deltas, resamples, rng)
    return PairedStats(
        n=n,
        excluded=excluded,
        mean_before=float(values_before.mean()),
        mean_after=float(values_after.mean()),
        mean_delta=float(deltas.mean()),
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        test=test,
        confidence=confidence,
        sd_delta=float(deltas.std(ddof=1)) if n >= 2 else None,
        improved=int((deltas > 0).sum()),
        regressed=int((deltas < 0).sum()),
        unchanged=int((deltas == 0).sum()),
    )


def bootstrap_interval(
    deltas: np.ndarray, confidence: float, resamples: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `deltas` (examples resampled)."""
    n = len(deltas)
    if n == 1 or np.all(deltas == deltas[0]):
        value = float(deltas[0])
        return value, value  # every resample has the same mean
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // n)  # bound memory: at most ~16 MB of indices at once
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        picks = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = deltas[picks].mean(axis=1)
    # The bootstrap spreads resampled means by the population (÷n) variance; widen them to
    # the sample (÷(n−1)) variance, which keeps small-n coverage nearer the nominal level.
    centre = float(deltas.mean())
    means = centre + (means - centre) * math.sqrt(n / (n - 1))
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    # no mean of resampled differences can lie outside their range
    return max(float(low), float(deltas.min())), min(float(high), float(deltas.max()))


def sign_flip_p_value(
    deltas: np.ndarray, resamples: int, rng: np.random.Generator
) -> tuple[float, str]:
    """Two-sided p-value of the sign-flip permutation test of mean(deltas) = 0."""
    nonzero = deltas[deltas != 0]  # a zero difference is the same under either sign
    if len(nonzero) == 0:
        return 1.0, TEST_NAME_EXACT
    observed = abs(nonzero.sum())
    tolerance = 1e-9 * max(1.0, float(np.abs(nonzero).sum()))
    if len(nonzero) <= EXACT_PERMUTATION_MAX_N:
        count = len(nonzero)
        codes = np.arange(2**count, dtype=np.int64)[:, None]
        signs = 1 - 2 * ((codes >> np.arange(count)) & 1)  # every ±1 vector once
        sums = np.abs(signs @ nonzero)
        return float(np.mean(sums >= observed - tolerance)), TEST_NAME_EXACT
    hits = 0
    chunk = max(1, 2_000_000 // len(nonzero))
    for start in range(0, resamples, chunk):
        size = min(resamples, start + chunk) - start
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, len(nonzero)))
        hits += int((np.abs(signs @ nonzero) >= observed - tolerance).sum())
    return (hits + 1) / (resamples + 1), TEST_NAME_MONTE_CARLO


def examples_needed(
    mean_delta: float | None,
    sd_delta: float | None,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
) -> int | None:
    """Examples a paired comparison needs to detect a difference of `mean_delta` with `power`
    at two-sided level `alpha`, if the per-example differences spread as `sd_delta` did.

    Normal approximation of the paired test: n = ((z(1 − α/2) + z(power)) · sd / |delta|)²,
    rounded up. None without a spread (fewer than 2 examples) or a difference to detect.
    """
    if mean_delta is None or sd_delta is None or abs(mean_delta) < ZERO:
        return None
    if sd_delta < ZERO:
        return 2  # no spread: any two examples show the difference
    normal = NormalDist()
    z_total = normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)
    return max(2, math.ceil((z_total * sd_delta / abs(mean_delta)) ** 2))


def mean_by_key(rows: list[tuple[str, float]]) -> dict[str, float]:
    """Mean score per example id over its repeats."""
    sums: dict[str, list[float]] = {}
    for key, value in rows:
        sums.setdefault(key, []).append(value)
    return {key: sum(values) / len(values) for key, values in sums.items()}


def mean_standard_errors(rows: list[tuple[str, float]]) -> dict[str, float]:
    """Run-to-run noise per example id: the standard error of its mean score over repeats
    (sample standard deviation / √repeats; only ids scored at least twice)."""
    groups: dict[str, list[float]] = {}
    for key, value in rows:
        groups.setdefault(key, []).append(value)
    return {
        key: float(np.std(values, ddof=1) / math.sqrt(len(values)))
        for key, values in groups.items()
        if len(values) >= 2
    }


NOISE_Z = NormalDist().inv_cdf(0.975)  # a change beyond ±1.96 standard errors is not noise


def exceeds_noise(delta: float, error_before: float | None, error_after: float | None) -> bool:
    """Whether one example's change is larger than its repeats' run-to-run noise explains:
    |delta| > 1.96 · √(se_before² + se_after²). Without repeats on either side nothing is known
    about the noise, and every change counts."""
    if error_before is None and error_after is None:
        return abs(delta) > ZERO
    combined = math.hypot(error_before or 0.0, error_after or 0.0)
    return abs(delta) > NOISE_Z * combined + ZERO
