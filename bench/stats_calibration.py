"""Calibration, power and speed of the paired statistics (`prompt_lsp.evaluation.stats`).

For each number of examples n: draw `--seeds` pairs of runs with no true difference (continuous
scores with per-example noise, and 0/1 scores like exact_match) and print how often the
comparison is called significant (the 95% interval excludes 0 and p < 0.05), how often the
interval alone excludes 0, and how often the permutation test's p < 0.05 (ideal: 5%); then with a true
shift of 0.05 (sd 0.1) how often it is detected (power), next to the `examples_needed` hint for
that shift; and the time of one `paired_comparison` call.

Run: python bench/stats_calibration.py [--seeds N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from prompt_lsp.evaluation.stats import examples_needed, paired_comparison


def _as_scores(values: np.ndarray) -> dict[str, float]:
    return {f"ex{i}": float(v) for i, v in enumerate(values)}


def rates(n: int, seeds: int, shift: float, binary: bool) -> tuple[float, float, float]:
    significant = interval = test = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed + 10_000 * n)
        if binary:
            skill = rng.random(n)
            before = (rng.random(n) < skill).astype(float)
            after = (rng.random(n) < np.clip(skill + shift, 0, 1)).astype(float)
        else:
            before = rng.random(n)
            after = before + shift + rng.normal(0, 0.1, n)
        result = paired_comparison(_as_scores(before), _as_scores(after), resamples=2000, seed=seed)
        significant += result.significant
        interval += result.ci_low > 0 or result.ci_high < 0
        test += result.p_value < 0.05
    return significant / seeds, interval / seeds, test / seeds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1000)
    args = parser.parse_args()
    print("false positives with no true difference (ideal 0.05); power for Δ = 0.05, sd 0.1")
    print("n    | signif. | CI only | p only | 0/1 signif. | CI only | p only | power | needed")
    for n in (14, 30, 60, 120):
        sig, ci, p = rates(n, args.seeds, 0.0, binary=False)
        sig01, ci01, p01 = rates(n, args.seeds, 0.0, binary=True)
        power, _, _ = rates(n, max(200, args.seeds // 5), 0.05, binary=False)
        print(
            f"{n:<4} | {sig:7.3f} | {ci:7.3f} | {p:6.3f} | {sig01:11.3f} | {ci01:7.3f} | "
            f"{p01:6.3f} | {power:5.3f} | {examples_needed(0.05, 0.1)}"
        )
    rng = np.random.default_rng(0)
    for n in (14, 100, 1000):
        before, after = _as_scores(rng.random(n)), _as_scores(rng.random(n))
        started = time.perf_counter()
        paired_comparison(before, after)
        print(f"paired_comparison, n={n}, 10 000 resamples: {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    main()
