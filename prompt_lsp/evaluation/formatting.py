"""How scores, deltas and times read, in the terminal and in the editor alike. Light: the
editor imports it at start-up."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from prompt_lsp.format.text import one_line as shorten

if TYPE_CHECKING:
    from prompt_lsp.evaluation.results import Comparison
    from prompt_lsp.evaluation.stats import PairedStats

__all__ = [
    "distinct_baseline",
    "format_bounds",
    "format_change",
    "format_delta",
    "format_interval",
    "format_noise",
    "format_p_value",
    "format_score",
    "format_when",
    "shorten",
    "stats_sentence",
]


def format_score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def format_delta(value: float | None) -> str:
    """▲0.051 / ▼0.012 / = (no change at three decimals); empty when unknown."""
    if value is None:
        return ""
    if abs(value) < 0.0005:
        return "="
    return f"{'▲' if value > 0 else '▼'}{abs(value):.3f}"


def format_change(delta: float | None, stats: PairedStats | None) -> str:
    """A delta judged by its paired statistics: ▲0.051 / ▼0.012 when the interval excludes 0,
    ≈+0.030 when it does not (noise), = when nothing moved; plain `format_delta` without stats."""
    if stats is None or stats.mean_delta is None:
        return format_delta(delta)
    value = stats.mean_delta if delta is None else delta
    if abs(value) < 0.0005 and not stats.significant:
        return "="
    if stats.significant:
        return format_delta(value) if abs(value) >= 0.0005 else f"{'▲' if value > 0 else '▼'}<0.001"
    return format_noise(value)


def format_noise(value: float) -> str:
    """A change within noise: `≈+0.030` / `≈−0.012`."""
    return f"≈{_signed(value)}"


def _signed(value: float) -> str:
    return f"{value:+.3f}".replace("-", "−")


def format_bounds(stats: PairedStats) -> str:
    """`[−0.012, +0.080]` (the confidence interval of the mean delta)."""
    if stats.ci_low is None or stats.ci_high is None:
        return "—"
    return f"[{_signed(stats.ci_low)}, {_signed(stats.ci_high)}]"


def format_interval(stats: PairedStats) -> str:
    """`+0.033 [−0.012, +0.080]` (the mean delta and its confidence interval)."""
    if stats.mean_delta is None:
        return "—"
    return f"{_signed(stats.mean_delta)} {format_bounds(stats)}"


def format_p_value(p_value: float | None) -> str:
    if p_value is None:
        return "—"
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def distinct_baseline(comparison: Comparison | None, baseline: Comparison | None) -> bool:
    """Whether the baseline is a reference of its own, not the version already compared with."""
    if baseline is None:
        return False
    return comparison is None or comparison.previous_version != baseline.previous_version


def stats_sentence(stats: PairedStats) -> str:
    """One line for people: verdict, interval, p-value, how many examples decided it and the
    examples-needed hint when the change is not significant."""
    if stats.n == 0:
        return "no example was scored by both versions"
    level = f"{stats.confidence:.0%}"
    verdict = (
        "significantly better"
        if stats.direction > 0
        else "significantly worse"
        if stats.direction < 0
        else "within noise"
    )
    parts = [
        f"{verdict}: Δ {format_interval(stats)} ({level} interval)",
        f"{format_p_value(stats.p_value)} ({stats.test})",
        f"n = {stats.n}" + (f", {stats.excluded} unpaired excluded" if stats.excluded else ""),
    ]
    needed = stats.examples_needed()
    if not stats.significant and needed is not None and needed > stats.n:
        parts.append(f"a change this size needs ≈{needed} examples to show (80% power)")
    return "; ".join(parts)


def format_when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")
