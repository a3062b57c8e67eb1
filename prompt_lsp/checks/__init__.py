"""Diagnostics computed from a document model and what it references (its examples, loaded by
the caller; the model catalog). Pure and LSP-free."""

from __future__ import annotations

from pathlib import Path

from prompt_lsp.checks import examples as example_checks
from prompt_lsp.checks import front_matter, secrets, template
from prompt_lsp.checks.findings import Finding, Fix, Location, Severity, TextEdit
from prompt_lsp.format.examples import ExampleSet
from prompt_lsp.format.model import PromptDocument

# Checks that render the template (tens of milliseconds on a long prompt): the editor runs them
# once typing pauses, and the quick ones on every change.
SLOW_CODES = frozenset({"context-overflow", "render-limit"})


def check_document(
    doc: PromptDocument,
    examples: ExampleSet | None,
    path: Path | None = None,
    *,
    default_model: str | None = None,
    slow: bool = True,
) -> list[Finding]:
    """Every finding for `doc`, a file at `path`, whose examples are `examples`
    (`evaluation.examples.load_examples`); without the SLOW_CODES checks when `slow` is false."""
    example_names = examples.variable_names if examples else None
    findings: list[Finding] = [
        *template.check_problems(doc),
        *front_matter.check_keys(doc),
        *front_matter.check_values(doc),
        *front_matter.check_model(doc),
        *front_matter.check_metrics(doc),
        *secrets.check_secrets(doc),
        *template.check_variables(doc, example_names),
        *template.check_filters(doc),
        *template.check_token_balance(doc),
        *template.check_foreign_tokens(doc, default_model),
        *template.check_messages(doc),
        *example_checks.check_examples_file(doc, examples, path),
    ]
    if examples is not None and not examples.error:
        findings += example_checks.check_example_variables(doc, examples)
        findings += example_checks.check_expected(doc, examples)
        if slow:
            findings += example_checks.check_context(doc, examples, default_model)
    findings.sort(key=lambda f: (f.range.start, f.severity))
    return capped(findings)


MAX_PER_CODE = 50  # a pathological file must not bury the editor under thousands of diagnostics


def capped(findings: list[Finding]) -> list[Finding]:
    """At most MAX_PER_CODE findings of each code, then one saying how many more there are."""
    counts: dict[str, int] = {}
    kept: list[Finding] = []
    for finding in findings:
        counts[finding.code] = counts.get(finding.code, 0) + 1
        if counts[finding.code] <= MAX_PER_CODE:
            kept.append(finding)
    for code, count in counts.items():
        if count > MAX_PER_CODE:
            last = next(f for f in reversed(kept) if f.code == code)
            kept.append(
                Finding(
                    code,
                    Severity.INFORMATION,
                    last.range,
                    f"{count - MAX_PER_CODE:,} more '{code}' findings are not shown.",
                )
            )
    return kept


def check_slow(
    doc: PromptDocument, examples: ExampleSet | None, *, default_model: str | None = None
) -> list[Finding]:
    """Only the SLOW_CODES checks."""
    if examples is None or examples.error:
        return []
    return list(example_checks.check_context(doc, examples, default_model))


__all__ = [
    "SLOW_CODES",
    "Finding",
    "Fix",
    "Location",
    "Severity",
    "TextEdit",
    "check_document",
    "check_slow",
]
