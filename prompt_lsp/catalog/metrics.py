"""What the built-in metrics are: names, hover text and accepted options (metadata only).

The implementations live in `prompt_lsp.evaluation.metrics`; this module imports nothing heavy so
that completion, hover and diagnostics can use it on the typing path.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MetricInfo:
    """A built-in metric as the editor describes it."""

    name: str
    description: str  # markdown, one or two sentences, for hover
    needs_expected: bool  # whether each example must carry an `expected` value
    options: tuple[str, ...] = ()  # option keys accepted besides `name` and `threshold`


_ROUGE = (
    "F-measure of {what} between the output and `expected` (`rouge-score`, with stemming); "
    "0 to 1, higher is better."
)

METRICS: dict[str, MetricInfo] = {
    info.name: info
    for info in (
        MetricInfo(
            "exact_match",
            "1 if the output equals `expected` exactly, else 0; the mean is accuracy.",
            True,
            ("ignore_case", "normalize_whitespace"),
        ),
        MetricInfo(
            "contains",
            "1 if the output contains `expected` as a substring, else 0.",
            True,
            ("ignore_case",),
        ),
        MetricInfo(
            "regex",
            "1 if the output matches a regular expression, else 0. The pattern is the `pattern` "
            "option when given, otherwise each example's `expected`. RE2 syntax (linear-time: no "
            "backreferences or lookaround).",
            True,
            ("pattern",),
        ),
        MetricInfo("rouge1", _ROUGE.format(what="unigram (single word) overlap"), True),
        MetricInfo("rouge2", _ROUGE.format(what="bigram (word pair) overlap"), True),
        MetricInfo("rougeL", _ROUGE.format(what="the longest common subsequence of words"), True),
        MetricInfo(
            "rougeLsum",
            _ROUGE.format(what="the longest common subsequence, computed sentence by sentence")
            + " Suited to multi-sentence summaries.",
            True,
        ),
        MetricInfo(
            "json_valid",
            "1 if the output parses as JSON, else 0. Needs no `expected`.",
            False,
        ),
        MetricInfo(
            "code_tests",
            "For code generation: `expected` holds Python test code, run against the model's "
            "code in a sandboxed subprocess; 1 if the tests pass, else 0, so the mean is accuracy.",
            True,
        ),
        MetricInfo(
            "llm_judge",
            "A judge model scores the output against a rubric (`rubric` option; `judge_model` "
            "picks the judge). Uses `expected` as a reference when examples have one.",
            False,
            ("rubric", "judge_model"),
        ),
    )
}


# The pattern comes from the prompt or an examples file, possibly hostile: RE2 matches in
# linear time (Python's `re` takes 25 s for `^echo: (a+)+$` on one 30-character reply).
RE2_SYNTAX_NOTE = "the regex metric uses RE2 syntax: no backreferences or lookaround"


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """A `regex` metric pattern, compiled by RE2 (a `re2._Regexp`); raises ValueError saying
    why RE2 refuses it."""
    import re2  # only when a pattern is checked or scored

    options = re2.Options()
    options.log_errors = False  # RE2 would write every bad pattern to stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as err:
        reason = err.args[0] if err.args else err
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        raise ValueError(f"{text} ({RE2_SYNTAX_NOTE})") from None


def regex_needs_expected(options: dict[str, object]) -> bool:
    """`regex` reads `expected` as its pattern unless the `pattern` option is given."""
    return not options.get("pattern")


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@functools.cache
def _normalized() -> dict[str, str]:
    return {_normalize(name): name for name in METRICS}


@functools.lru_cache(maxsize=256)
def _suggest(name: str) -> tuple[str, ...]:
    key = _normalize(name)
    table = _normalized()
    if key in table:  # only case or punctuation differ: "rouge-l", "ROUGE_L", "ExactMatch"
        return (table[key],)
    return tuple(table[m] for m in difflib.get_close_matches(key, list(table), n=3, cutoff=0.6))


def suggest_metric(name: str) -> list[str]:
    """Did-you-mean metric names for an unknown `name` (case and punctuation are ignored)."""
    if name in METRICS:
        return []
    return list(_suggest(name))
