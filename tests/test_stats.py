"""Paired statistics against hand-computed values and scipy's reference implementations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from prompt_lsp.evaluation.stats import (
    TEST_NAME_EXACT,
    TEST_NAME_MONTE_CARLO,
    examples_needed,
    exceeds_noise,
    mean_by_key,
    mean_standard_errors,
    paired_comparison,
)


def _scores(values: list[float]) -> dict[str, float]:
    return {f"ex{i}": value for i, value in enumerate(values)}


def test_hand_computed_small_case() -> None:
    # differences +0.1, +0.1, −0.1: mean 0.0333; the 8 sign flips give |sum| 0.1 or 0.3, so
    # every assignment is at least as extreme as the observed |0.1|: p = 1.
    result = paired_comparison(_scores([0.3, 0.5, 0.2]), _scores([0.4, 0.6, 0.1]))
    assert result.n == 3 and result.excluded == 0
    assert result.mean_delta == pytest.approx(1 / 30)
    assert result.p_value == pytest.approx(1.0)
    assert result.test == TEST_NAME_EXACT
    assert (result.improved, result.regressed, result.unchanged) == (2, 1, 0)
    # a resample's mean is a mean of three of {+0.1, +0.1, −0.1}: the 2.5% and 97.5% quantiles
    # are −0.1 (1 in 27 draws) and +0.1 (8 in 27), widened by √(3/2) around 1/30
    # and clipped to the differences' range: no resample's mean can leave [−0.1, +0.1]
    widen = math.sqrt(3 / 2)
    assert 1 / 30 + (-0.1 - 1 / 30) * widen < -0.1 and 1 / 30 + (0.1 - 1 / 30) * widen > 0.1
    assert result.ci_low == pytest.approx(-0.1) and result.ci_high == pytest.approx(0.1)
    assert not result.significant and result.direction == 0
    assert result.sd_delta == pytest.approx(np.std([0.1, 0.1, -0.1], ddof=1))


def test_exact_p_value_matches_an_enumeration_and_scipy() -> None:
    before = [0.31, 0.52, 0.18, 0.77, 0.45, 0.60, 0.12, 0.90, 0.35]
    after = [0.40, 0.55, 0.30, 0.70, 0.58, 0.66, 0.25, 0.93, 0.31]
    result = paired_comparison(_scores(before), _scores(after))
    deltas = np.array(after) - np.array(before)
    observed = abs(deltas.sum())
    extreme = sum(
        abs(np.dot(signs, deltas)) >= observed - 1e-12
        for signs in itertools.product((-1, 1), repeat=len(deltas))
    )
    assert result.p_value == pytest.approx(extreme / 2 ** len(deltas))
    reference = scipy_stats.permutation_test(
        (np.array(after), np.array(before)),
        lambda x, y: np.mean(x - y),
        permutation_type="samples",
        n_resamples=np.inf,
    )
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.test == TEST_NAME_EXACT


def test_bootstrap_interval_agrees_with_scipy_percentile() -> None:
    rng = np.random.default_rng(7)
    before = rng.random(25)
    after = before + 0.04 + rng.normal(0, 0.08, 25)
    result = paired_comparison(_scores(list(before)), _scores(list(after)), resamples=20_000)
    reference = scipy_stats.bootstrap(
        (after - before,),
        np.mean,
        confidence_level=0.95,
        method="percentile",
        n_resamples=20_000,
        random_state=np.random.default_rng(1),
    ).confidence_interval
    # ours widens the resampled means by √(n/(n−1)) around the observed mean (documented)
    centre, widen = float(np.mean(after - before)), math.sqrt(25 / 24)
    low, high = (centre + (bound - centre) * widen for bound in (reference.low, reference.high))
    assert min(after - before) < low and high < max(after - before)  # so no clipping here
    # two independent Monte Carlo estimates of the same quantiles
    assert result.ci_low == pytest.approx(low, abs=0.004)
    assert result.ci_high == pytest.approx(high, abs=0.004)
    assert result.ci_low < result.mean_delta < result.ci_high


def test_many_examples_use_monte_carlo_close_to_scipy() -> None:
    rng = np.random.default_rng(3)
    before = rng.random(40)
    after = before + rng.normal(0.02, 0.1, 40)
    result = paired_comparison(_scores(list(before)), _scores(list(after)), resamples=20_000)
    assert result.test == TEST_NAME_MONTE_CARLO
    reference = scipy_stats.permutation_test(
        (after, before),
        lambda x, y: np.mean(x - y),
        permutation_type="samples",
        n_resamples=20_000,
        random_state=np.random.default_rng(5),
    )
    assert result.p_value == pytest.approx(reference.pvalue, abs=0.015)


def test_same_seed_same_numbers_and_a_different_seed_close() -> None:
    rng = np.random.default_rng(11)
    before, after = _scores(list(rng.random(30))), _scores(list(rng.random(30)))
    assert paired_comparison(before, after, seed=4) == paired_comparison(before, after, seed=4)
    other = paired_comparison(before, after, seed=5)
    assert other.ci_low == pytest.approx(paired_comparison(before, after).ci_low, abs=0.01)


def test_all_equal_runs_are_no_change() -> None:
    scores = _scores([0.2, 0.4, 0.4, 0.9])
    result = paired_comparison(scores, dict(scores))
    assert result.mean_delta == 0 and result.ci_low == 0 and result.ci_high == 0
    assert result.p_value == 1.0 and not result.significant
    assert result.unchanged == 4 and result.examples_needed() is None


def test_ties_and_zero_differences() -> None:
    # three examples unchanged, four up by the same 0.25: zeros do not count in the sign flips
    before = _scores([0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0])
    after = _scores([0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25])
    result = paired_comparison(before, after)
    assert result.unchanged == 3 and result.improved == 4
    assert result.p_value == pytest.approx(2 / 2**4)  # only all-plus and all-minus as extreme
    assert result.mean_delta == pytest.approx(1 / 7)
    assert result.ci_low >= 0  # no resample can have a negative mean
    # A constant shift on every example: no spread, the interval is the shift itself
    constant = paired_comparison(_scores([0.1, 0.2, 0.3]), _scores([0.2, 0.3, 0.4]))
    assert constant.ci_low == pytest.approx(0.1) and constant.ci_high == pytest.approx(0.1)
    # but three examples cannot give p < 0.25: not significant however steady the shift
    assert constant.p_value == pytest.approx(2 / 8)
    assert not constant.significant and constant.direction == 0
    steady = paired_comparison(_scores([0.1] * 6), _scores([0.3] * 6))
    assert steady.p_value == pytest.approx(2 / 64) and steady.significant
    assert steady.direction == 1


def test_one_example() -> None:
    result = paired_comparison({"a": 0.2}, {"a": 0.7})
    assert result.n == 1 and result.mean_delta == pytest.approx(0.5)
    assert result.p_value == pytest.approx(1.0)  # +0.5 and −0.5 are equally extreme
    assert result.sd_delta is None and result.examples_needed() is None


def test_missing_examples_are_excluded_and_counted() -> None:
    before = {"a": 0.1, "b": 0.2, "c": 0.3, "gone": 0.9}
    after = {"a": 0.2, "b": 0.3, "c": 0.4, "new1": 0.0, "new2": 1.0}
    result = paired_comparison(before, after)
    assert result.n == 3 and result.excluded == 3
    assert result.mean_before == pytest.approx(0.2) and result.mean_after == pytest.approx(0.3)
    nothing = paired_comparison({"a": 1.0}, {"b": 1.0})
    assert nothing.n == 0 and nothing.excluded == 2 and nothing.mean_delta is None
    assert not nothing.significant and nothing.p_value is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        paired_comparison({}, {}, confidence=1.5)
    with pytest.raises(ValueError):
        paired_comparison({}, {}, resamples=0)


def test_repeats_are_averaged_and_give_the_run_to_run_noise() -> None:
    rows = [("a", 0.2), ("a", 0.4), ("a", 0.6), ("b", 1.0)]
    assert mean_by_key(rows) == pytest.approx({"a": 0.4, "b": 1.0})
    errors = mean_standard_errors(rows)
    assert set(errors) == {"a"}  # one repeat says nothing about noise
    assert errors["a"] == pytest.approx(0.2 / math.sqrt(3))
    # within 1.96 combined standard errors: noise; beyond: a real change
    # 1.96 · √(0.1² + 0.1²) = 0.277: a change of 0.3 is beyond the noise, 0.25 is not
    assert exceeds_noise(0.3, 0.1, 0.1) and exceeds_noise(-0.3, 0.1, 0.1)
    assert not exceeds_noise(0.25, 0.1, 0.1) and not exceeds_noise(-0.25, 0.1, 0.1)
    assert exceeds_noise(0.25, 0.1, None)  # 1.96 · 0.1 = 0.196
    assert exceeds_noise(0.01, None, None) and not exceeds_noise(0.0, None, None)


def test_examples_needed_normal_approximation() -> None:
    # n = ((1.95996 + 0.84162) · sd / delta)²; sd/delta = 2 → 31.4 → 32
    assert examples_needed(0.05, 0.10) == 32
    assert examples_needed(-0.05, 0.10) == 32
    assert examples_needed(0.0, 0.1) is None and examples_needed(0.1, None) is None
    result = paired_comparison(_scores([0.1, 0.5, 0.3, 0.8]), _scores([0.2, 0.5, 0.45, 0.7]))
    assert result.examples_needed() == examples_needed(result.mean_delta, result.sd_delta)


def _false_positive_rates(n: int, seeds: int) -> tuple[float, float]:
    interval_hits = test_hits = 0
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        before = rng.random(n)
        after = before + rng.normal(0, 0.1, n)  # no true difference
        result = paired_comparison(
            _scores(list(before)), _scores(list(after)), resamples=1000, seed=seed
        )
        interval_hits += result.significant
        assert not result.significant or result.p_value < 0.05
        test_hits += result.p_value < 0.05
    return interval_hits / seeds, test_hits / seeds


def test_false_positive_rate_is_near_the_nominal_five_percent() -> None:
    interval_rate, test_rate = _false_positive_rates(n=30, seeds=300)
    # 300 draws of a 5% event: standard error 1.3 points. `significant` needs the interval to
    # exclude 0 and the exact permutation test to agree.
    assert 0.01 <= interval_rate <= 0.08
    assert 0.01 <= test_rate <= 0.09


def test_how_a_delta_reads() -> None:
    from prompt_lsp.evaluation.formatting import (
        format_change,
        format_interval,
        format_p_value,
        stats_sentence,
    )

    drop = paired_comparison(_scores([1.0] * 8), _scores([0.0] * 8))
    assert format_change(-1.0, drop) == "▼1.000"
    assert format_interval(drop) == "−1.000 [−1.000, −1.000]"
    assert format_p_value(drop.p_value) == "p = 0.008"
    assert stats_sentence(drop).startswith("significantly worse: Δ −1.000 [−1.000, −1.000]")
    noise = paired_comparison(_scores([0.2, 0.5, 0.4]), _scores([0.3, 0.4, 0.6]))
    assert format_change(noise.mean_delta, noise) == "≈+0.067"
    assert "within noise" in stats_sentence(noise) and "examples to show (80% power)" in (
        stats_sentence(noise)
    )
    same = paired_comparison(_scores([0.2, 0.5]), _scores([0.2, 0.5]))
    assert format_change(0.0, same) == "="
    assert format_change(0.05, None) == "▲0.050"  # no statistics: the plain delta
    assert format_p_value(0.0001) == "p < 0.001"
    assert stats_sentence(paired_comparison({"a": 1.0}, {"b": 1.0})).startswith("no example")
