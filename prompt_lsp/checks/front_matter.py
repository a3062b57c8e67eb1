"""Checks of the front matter: keys, value types, the model and the metrics."""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from prompt_lsp.catalog.metrics import compile_pattern
from prompt_lsp.catalog.models import is_known_model, suggest_models
from prompt_lsp.checks.findings import Finding, Fix, Severity, TextEdit
from prompt_lsp.format.keys import SECTIONS
from prompt_lsp.format.model import PromptDocument, Range
from prompt_lsp.format.settings import SettingProblem


def did_you_mean(word: str, candidates: list[str] | tuple[str, ...]) -> list[str]:
    return difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)


def suggestion_hint(suggestions: list[str]) -> str:
    """` Did you mean 'x'?` for the best suggestion, or nothing."""
    return f" Did you mean '{suggestions[0]}'?" if suggestions else ""


def replace_fixes(rng: Range, suggestions: list[str], what: str) -> tuple[Fix, ...]:
    return tuple(
        Fix(f"Change {what} to '{s}'", (TextEdit(rng, s),), preferred=i == 0)
        for i, s in enumerate(suggestions)
    )


def check_keys(doc: PromptDocument) -> Iterator[Finding]:
    for entry in doc.entries:
        parent, key = entry.path[:-1], entry.path[-1]
        known = SECTIONS.get(parent)  # type: ignore[arg-type]
        if known is None or not isinstance(key, str) or key in known or entry.key_range is None:
            continue
        suggestions = did_you_mean(key, list(known))
        if parent == ("config",) and not suggestions:
            continue  # other provider parameters pass through to the model call
        where = "front matter" if not parent else f"`{'.'.join(map(str, parent))}`"
        hint = suggestion_hint(suggestions)
        yield Finding(
            "unknown-key",
            Severity.WARNING,
            entry.key_range,
            f"Unknown key '{key}' in the {where}.{hint}",
            fixes=replace_fixes(entry.key_range, suggestions, "key"),
        )


def check_values(doc: PromptDocument) -> Iterator[Finding]:
    """The front matter's value problems, as `format.settings` found them (the same rules a
    run applies)."""
    for problem in doc.settings.problems:
        if problem.code == "invalid-value":
            yield _finding(problem)


def _finding(problem: SettingProblem) -> Finding:
    return Finding(
        problem.code,
        Severity.ERROR if problem.error else Severity.WARNING,
        problem.range,
        problem.message,
        fixes=replace_fixes(problem.range, list(problem.suggestions), _WHAT[problem.code]),
    )


_WHAT = {"invalid-value": "type", "unknown-metric": "metric"}


def check_model(doc: PromptDocument) -> Iterator[Finding]:
    entry = doc.settings.model_entry
    model = doc.settings.model
    if entry is None or model is None or is_known_model(model):
        return
    literal = isinstance(entry.value, str)
    rng = entry.value_range if literal else entry.key_range or entry.value_range
    suggestions = suggest_models(model)
    hint = suggestion_hint(suggestions)
    yield Finding(
        "unknown-model",
        Severity.WARNING,
        rng,
        f"Unknown model '{model}': not in litellm's model list and no known provider prefix.{hint}",
        fixes=replace_fixes(rng, suggestions, "model") if literal else (),
    )


def check_metrics(doc: PromptDocument) -> Iterator[Finding]:
    for problem in doc.settings.problems:
        if problem.code == "unknown-metric":
            yield _finding(problem)
    yield from _check_patterns(doc)


def _check_patterns(doc: PromptDocument) -> Iterator[Finding]:
    """A `regex` metric's `pattern` RE2 cannot run (a backreference, a lookahead)."""
    names = {e.path[:2]: e.value for e in doc.entries if len(e.path) == 3 and e.path[2] == "name"}
    for entry in doc.entries:
        path = entry.path
        if (
            path[:1] != ("metrics",)
            or path[-1:] != ("pattern",)
            or not isinstance(entry.value, str)
        ):
            continue
        # `- regex: {pattern: …}` or `- {name: regex, pattern: …}`
        if not (path[2:3] == ("regex",) and len(path) == 4 or names.get(path[:2]) == "regex"):
            continue
        try:
            compile_pattern(entry.value)
        except ValueError as err:
            yield Finding(
                "invalid-value", Severity.ERROR, entry.value_range, f"Invalid pattern: {err}."
            )
