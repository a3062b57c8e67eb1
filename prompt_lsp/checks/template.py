"""Checks of the template body: syntax, variables, filters, special tokens, messages."""

from __future__ import annotations

from collections.abc import Iterator

from prompt_lsp.catalog.tokens import SEED_TOKENS, family_for_model, lookup_token, token_pairs
from prompt_lsp.checks.findings import Finding, Fix, Location, Severity, TextEdit
from prompt_lsp.checks.front_matter import did_you_mean, replace_fixes, suggestion_hint
from prompt_lsp.format.examples import ExampleSet
from prompt_lsp.format.model import Entry, Position, PromptDocument, Range, SchemaField, TokenUse
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


def check_variables(
    doc: PromptDocument, example_names: set[str] | None, examples: ExampleSet | None = None
) -> Iterator[Finding]:
    """Undefined and unused variables. Without a schema or defaults, the examples' keys declare
    the variables; without those either there is nothing to check against. The fix declares a
    variable optional when an example lacks it: a required one would be an error on each."""
    declared_in_front_matter = doc.has_schema or bool(doc.defaults)
    if declared_in_front_matter:
        declared = doc.declared_names
    elif example_names:
        declared = example_names
    else:
        return
    source = "input.schema" if declared_in_front_matter else "the examples"
    if declared_in_front_matter and doc.entry("input") is None and doc.entry("inputs"):
        source = "inputs"
    # Declaring the first variable in a file that has no schema makes the schema the
    # declaration: the variables the examples give are declared with it.
    given = (
        ()
        if declared_in_front_matter or examples is None
        else tuple(
            (name, any(name not in e.inputs for e in examples.examples))
            for name in sorted(declared)
        )
    )
    for use in doc.variables:
        if use.name in declared:
            continue
        yield Finding(
            "undefined-variable",
            Severity.ERROR,
            use.range,
            f"'{use.name}' is used but not declared in {source}.",
            fixes=(
                declare_variable_fix(
                    doc,
                    use.name,
                    optional=examples is not None
                    and any(use.name not in e.inputs for e in examples.examples),
                    given=given,
                ),
            ),
            related=_schema_location(doc),
        )
    if not doc.template_ok or doc.truncated:
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
                fixes=_remove_field_fix(doc, field),
            )


def _schema_location(doc: PromptDocument) -> tuple[Location, ...]:
    entry = doc.entry("input", "schema") or doc.entry("inputs")
    return (
        (Location(None, entry.key_range, "inputs are declared here"),)
        if entry and entry.key_range
        else ()
    )


def declare_variable_fix(
    doc: PromptDocument,
    name: str,
    optional: bool = False,
    given: tuple[tuple[str, bool], ...] = (),
) -> Fix:
    """Insert `name: string` (`name?: string` when `optional`) into `input.schema`, creating
    the block if needed (or into a Prompty file's own `inputs:`). A block created anew also
    declares `given`, the (name, optional) the examples already provide."""
    prompty = _declare_in_prompty_inputs(doc, name)
    if prompty is not None:
        return prompty
    schema = doc.entry("input", "schema")
    line_text = _field_line(name, optional)
    if schema is not None and isinstance(schema.value, dict) and schema.key_range is not None:
        fields = [e for e in doc.entries if len(e.path) == 3 and e.path[:2] == ("input", "schema")]
        value_start = schema.value_range.start
        if schema.value and doc.lines[value_start.line][value_start.character :].startswith("{"):
            # a flow mapping `schema: {a: string}`: add to it before its `}`
            end = schema.value_range.end
            return Fix(
                _declare_title(name, optional),
                (TextEdit(Range.of(end.line, end.character - 1), f", {line_text}"),),
                preferred=True,
            )
        if fields and fields[-1].key_range is not None:
            indent = fields[-1].key_range.start.character
            end = fields[-1].value_range.end
            # a block value ends where the next key starts: (line, indent) belongs to that line
            line = end.line
            if (
                doc.lines[end.line][: end.character].strip()
                or line == fields[-1].key_range.start.line
            ):
                line += 1
        else:
            indent = schema.key_range.start.character + 2
            line = schema.key_range.start.line + 1
        if schema.value == {} and schema.value_range.start.line == schema.key_range.start.line:
            # `schema: {}` on one line: rewrite it as a block
            return Fix(
                _declare_title(name, optional),
                (TextEdit(schema.value_range, f"\n{' ' * indent}{line_text}"),),
                preferred=True,
            )
        return Fix(
            _declare_title(name, optional),
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
        fields = "".join(
            f"{' ' * (indent + 2)}{_field_line(n, o)}\n" for n, o in (*given, (name, optional))
        )
        text = f"{' ' * indent}schema:\n{fields}"
        return Fix(
            _declare_title(name, optional),
            (TextEdit(Range.of(line, 0), text),),
            preferred=True,
        )
    fields = "".join(f"    {_field_line(n, o)}\n" for n, o in (*given, (name, optional)))
    block = f"input:\n  schema:\n{fields}"
    if doc.has_front_matter and doc.front_matter_range is not None:
        insert_line = doc.body_start_line - 1
        return Fix(
            _declare_title(name, optional),
            (TextEdit(Range.of(insert_line, 0), block),),
            preferred=True,
        )
    return Fix(
        _declare_title(name, optional),
        (TextEdit(Range.of(0, 0), f"---\n{block}---\n"),),
        preferred=True,
    )


def _field_line(name: str, optional: bool) -> str:
    return f"{name}{'?' if optional else ''}: string"


def _declare_title(name: str, optional: bool) -> str:
    return f"Declare '{name}' in input.schema" + (" (optional)" if optional else "")


def _declare_in_prompty_inputs(doc: PromptDocument, name: str) -> Fix | None:
    """Prompty's block `inputs:` (a mapping of name -> spec, or a list of `- name:` items) gets
    the new input in its own form; adding `input.schema` would shadow it."""
    inputs = doc.entry("inputs")
    if doc.entry("input") is not None or inputs is None or not inputs.value:
        return None
    if not isinstance(inputs.value, (dict, list)) or inputs.key_range is None:
        return None
    start = inputs.value_range.start
    spelled = (
        "kind"
        if any(isinstance(v, dict) and "kind" in v for v in _values(inputs.value))
        else "type"
    )
    if doc.lines[start.line][start.character :].startswith(("{", "[")):
        # a flow collection: add to it before its closing bracket
        close = inputs.value_range.end
        item = (
            f"{{name: {name}, {spelled}: string}}"
            if isinstance(inputs.value, list)
            else f"{name}: {{{spelled}: string}}"
        )
        return Fix(
            f"Declare '{name}' in inputs",
            (TextEdit(Range.of(close.line, close.character - 1), f", {item}"),),
            preferred=True,
        )
    items = [e for e in doc.entries if len(e.path) == 2 and e.path[0] == "inputs"]
    if not items:
        return None
    end = items[-1].value_range.end
    line = end.line + 1 if doc.lines[end.line][: end.character].strip() else end.line
    if isinstance(inputs.value, list):
        indent = " " * start.character
        text = f"{indent}- name: {name}\n{indent}  {spelled}: string\n"
    else:
        key_range = items[-1].key_range
        indent = " " * (key_range.start.character if key_range else start.character)
        text = f"{indent}{name}:\n{indent}  {spelled}: string\n"
    return Fix(
        f"Declare '{name}' in inputs",
        (TextEdit(Range.of(line, 0), text),),
        preferred=True,
    )


def _values(collection: dict | list) -> list:
    return list(collection.values()) if isinstance(collection, dict) else list(collection)


def _remove_field_fix(doc: PromptDocument, field: SchemaField) -> tuple[Fix, ...]:
    """Remove a declared input with everything under it: its lines in a block mapping or list,
    or its `key: value` and one comma in a flow mapping."""
    entry = _field_entry(doc, field)
    if entry is None:
        return ()
    title = f"Remove '{field.name}' from the schema"
    start = entry.key_range.start if entry.key_range is not None else entry.value_range.start
    end = entry.value_range.end
    before = doc.lines[start.line][: start.character]
    if before.strip() in ("", "-"):  # a block entry, or a block list item
        last = end.line if doc.lines[end.line][: end.character].strip() else end.line - 1
        last = max(last, start.line)
        return (Fix(title, (TextEdit(Range(Position(start.line, 0), Position(last + 1, 0)), ""),)),)
    if start.line != end.line:
        return ()
    line = doc.lines[start.line]
    after = line[end.character :]
    if after.lstrip().startswith(","):  # `{spare: string, a: string}`
        stop = end.character + len(after) - len(after.lstrip()) + 1
        stop += len(line[stop:]) - len(line[stop:].lstrip())
        rng = Range(start, Position(start.line, stop))
    elif before.rstrip().endswith(","):  # `{a: string, spare: string}`
        rng = Range(Position(start.line, len(before.rstrip()) - 1), end)
    else:  # the only entry: `{spare: string}`
        rng = Range(start, end)
    return (Fix(title, (TextEdit(rng, ""),)),)


def _field_entry(doc: PromptDocument, field: SchemaField) -> Entry | None:
    """The front matter entry that declares `field`: the Picoschema or Prompty v1 key, or the
    whole Prompty v2 list item whose `name:` it is."""
    for entry in doc.entries:
        v2_name = len(entry.path) == 3 and entry.path[0] == "inputs" and entry.path[2] == "name"
        if v2_name and entry.value_range == field.range:
            return doc.entry(*entry.path[:2])
        if (
            not v2_name
            and entry.key_range is not None
            and entry.key_range.start == field.range.start
            and (entry.path[:2] == ("input", "schema") or entry.path[:1] == ("inputs",))
        ):
            return entry
    return None


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
        hint = suggestion_hint(suggestions)
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
    declared = set(doc.settings.tokens)
    for token in doc.tokens:
        if not _is_angle_tag(token.text):
            continue
        if token.text in declared and _tag_partner(token.text) not in declared:
            continue  # a special token of this file's own (`<sep>`), not a tag to close
        if token.text.startswith("</"):
            pairs.setdefault("<" + token.text[2:], token.text)
        else:
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


def _tag_partner(tag: str) -> str:
    """`</x>` for `<x>`, `<x>` for `</x>`."""
    return "<" + tag[2:] if tag.startswith("</") else "</" + tag[1:]


def _is_angle_tag(text: str) -> bool:
    """`<article>`-style tags that are not special tokens of a model family."""
    return text.startswith("<") and not text.startswith(("<|", "<<")) and lookup_token(text) is None


def check_foreign_tokens(doc: PromptDocument, default_model: str | None) -> Iterator[Finding]:
    model = doc.settings.model_or_default(default_model)
    family = family_for_model(model)
    if family is None:
        return
    declared = set(doc.settings.tokens)
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
