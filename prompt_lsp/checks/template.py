"""Checks of the template body: syntax, variables, filters, special tokens, messages."""

from __future__ import annotations

from collections.abc import Iterator

from prompt_lsp.catalog.models import DEFAULT_MODEL
from prompt_lsp.catalog.tokens import SEED_TOKENS, family_for_model, lookup_token, token_pairs
from prompt_lsp.checks.findings import Finding, Fix, Location, Severity, TextEdit
from prompt_lsp.checks.front_matter import did_you_mean, replace_fixes
from prompt_lsp.format.model import Position, PromptDocument, Range, TokenUse
from prompt_lsp.format.template import environment

_PROBLEM_SEVERITY = {"too-large": Severity.INFORMATION}


def check_problems(doc: PromptDocument) -> Iterator[Finding]:
    for problem in doc.problems:
        yield Finding(
            problem.code,
            _PROBLEM_SEVERITY.get(problem.code, Severity.ERROR),
            problem.range,
            problem.message,
        )
    if doc.truncated:
        yield Finding(
            "too-large",
            Severity.INFORMATION,
            Range.of(0, 0),
            "This file is too large to analyse while typing: template checks are skipped.",
        )


def check_variables(doc: PromptDocument, example_names: set[str] | None) -> Iterator[Finding]:
    """Undefined and unused variables. Without a schema or defaults, the examples' keys declare
    the variables; without those either there is nothing to check against."""
    declared_in_front_matter = doc.has_schema or bool(doc.defaults)
    if declared_in_front_matter:
        declared = doc.declared_names
    elif example_names:
        declared = example_names
    else:
        return
    source = "input.schema" if declared_in_front_matter else "the examples"
    for use in doc.variables:
        if use.name in declared:
            continue
        yield Finding(
            "undefined-variable",
            Severity.ERROR,
            use.range,
            f"'{use.name}' is used but not declared in {source}.",
            fixes=(declare_variable_fix(doc, use.name),),
            related=_schema_location(doc),
        )
    if not doc.template_ok:
        return  # the names seen are incomplete
    used = doc.used_variable_names
    for field in doc.schema:
        if field.name not in used and field.range.end.character > 0:
            yield Finding(
                "unused-variable",
                Severity.HINT,
                field.range,
                f"'{field.name}' is declared but never used in the template.",
                unnecessary=True,
                fixes=(
                    _remove_line_fix(
                        field.range.start.line, f"Remove '{field.name}' from the schema"
                    ),
                ),
            )


def _schema_location(doc: PromptDocument) -> tuple[Location, ...]:
    entry = doc.entry("input", "schema") or doc.entry("inputs")
    return (
        (Location(None, entry.key_range, "inputs are declared here"),)
        if entry and entry.key_range
        else ()
    )


def declare_variable_fix(doc: PromptDocument, name: str) -> Fix:
    """Insert `name: string` into `input.schema`, creating the block if needed."""
    schema = doc.entry("input", "schema")
    line_text = f"{name}: string"
    if schema is not None and isinstance(schema.value, dict) and schema.key_range is not None:
        fields = [e for e in doc.entries if len(e.path) == 3 and e.path[:2] == ("input", "schema")]
        if fields and fields[-1].key_range is not None:
            indent = fields[-1].key_range.start.character
            line = fields[-1].value_range.end.line
            if fields[-1].value_range.end.character > 0 or line == fields[-1].key_range.start.line:
                line += 1
        else:
            indent = schema.key_range.start.character + 2
            line = schema.key_range.start.line + 1
        if schema.value == {} and schema.value_range.start.line == schema.key_range.start.line:
            # `schema: {}` on one line: rewrite it as a block
            return Fix(
                f"Declare '{name}' in input.schema",
                (TextEdit(schema.value_range, f"\n{' ' * indent}{line_text}"),),
                preferred=True,
            )
        return Fix(
            f"Declare '{name}' in input.schema",
            (TextEdit(Range.of(line, 0), f"{' ' * indent}{line_text}\n"),),
            preferred=True,
        )
    input_entry = doc.entry("input")
    if (
        input_entry is not None
        and input_entry.key_range is not None
        and isinstance(input_entry.value, dict)
    ):
        line = input_entry.key_range.start.line + 1
        indent = input_entry.key_range.start.character + 2
        text = f"{' ' * indent}schema:\n{' ' * (indent + 2)}{line_text}\n"
        return Fix(
            f"Declare '{name}' in input.schema",
            (TextEdit(Range.of(line, 0), text),),
            preferred=True,
        )
    block = f"input:\n  schema:\n    {line_text}\n"
    if doc.has_front_matter and doc.front_matter_range is not None:
        insert_line = doc.body_start_line - 1
        return Fix(
            f"Declare '{name}' in input.schema",
            (TextEdit(Range.of(insert_line, 0), block),),
            preferred=True,
        )
    return Fix(
        f"Declare '{name}' in input.schema",
        (TextEdit(Range.of(0, 0), f"---\n{block}---\n"),),
        preferred=True,
    )


def _remove_line_fix(line: int, title: str) -> Fix:
    return Fix(title, (TextEdit(Range(Position(line, 0), Position(line + 1, 0)), ""),))


def check_filters(doc: PromptDocument) -> Iterator[Finding]:
    env = environment()
    for use in doc.names:
        if use.kind == "filter" and use.name not in env.filters:
            known, what = list(env.filters), "filter"
        elif use.kind == "test" and use.name not in env.tests:
            known, what = list(env.tests), "test"
        else:
            continue
        suggestions = did_you_mean(use.name, known)
        hint = f" Did you mean '{suggestions[0]}'?" if suggestions else ""
        yield Finding(
            "unknown-filter",
            Severity.ERROR,
            use.range,
            f"Unknown Jinja {what} '{use.name}'.{hint}",
            fixes=replace_fixes(use.range, suggestions, what),
        )


def check_token_balance(doc: PromptDocument) -> Iterator[Finding]:
    """An opening token needs its closing one: `<start>`/`<end>`, `<x>`/`</x>`, `[INST]`/`[/INST]`."""
    pairs = dict(token_pairs())
    for token in doc.tokens:
        if _is_angle_tag(token.text) and not token.text.startswith("</"):
            pairs.setdefault(token.text, "</" + token.text[1:])
    closers = {close: open_ for open_, close in pairs.items()}
    stacks: dict[str, list[TokenUse]] = {}
    for token in doc.tokens:
        if token.text in pairs:
            stacks.setdefault(token.text, []).append(token)
        elif token.text in closers:
            opener = closers[token.text]
            if stacks.get(opener):
                stacks[opener].pop()
            elif _is_angle_tag(opener) or lookup_token(opener):
                yield Finding(
                    "unbalanced-token",
                    Severity.WARNING,
                    token.range,
                    f"'{token.text}' closes '{opener}', which is not open here.",
                )
    for opener, open_tokens in stacks.items():
        closer = pairs[opener]
        for token in open_tokens:
            line_end = len(doc.lines[token.range.end.line])
            insert = Range.of(token.range.end.line, line_end)
            yield Finding(
                "unbalanced-token",
                Severity.WARNING,
                token.range,
                f"'{opener}' is never closed with '{closer}'.",
                fixes=(
                    Fix(
                        f"Add '{closer}' at the end of the line",
                        (TextEdit(insert, closer),),
                        preferred=True,
                    ),
                ),
            )


def _is_angle_tag(text: str) -> bool:
    """`<article>`-style tags that are not special tokens of a model family."""
    return text.startswith("<") and not text.startswith(("<|", "<<")) and lookup_token(text) is None


def check_foreign_tokens(doc: PromptDocument, default_model: str | None) -> Iterator[Finding]:
    model = doc.model_id or default_model or DEFAULT_MODEL
    family = family_for_model(model)
    if family is None:
        return
    declared = {t for t in doc.metadata.get("tokens") or [] if isinstance(t, str)}
    own = {t.text for t in family.tokens} | {t.text for t in SEED_TOKENS}
    for use in doc.tokens:
        token = lookup_token(use.text)
        if (
            token is None
            or use.text in own
            or use.text in declared
            or token.family in ("seed", "file")
        ):
            continue
        yield Finding(
            "foreign-token",
            Severity.WARNING,
            use.range,
            f"'{use.text}' is a {token.family} token, but the model '{model}' uses the {family.name} format.",
        )


def check_messages(doc: PromptDocument) -> Iterator[Finding]:
    for message in doc.messages:
        if message.marker_range is not None and not message.text:
            yield Finding(
                "empty-message",
                Severity.WARNING,
                message.marker_range,
                f"The {message.role} message is empty: write its text below the marker, or remove the marker.",
            )
