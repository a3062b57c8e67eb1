"""Types written in Picoschema beyond the input variables themselves: `output.schema` and the
fields of nested objects (`author(object): {name: string}`). The input variables' own types are
checked with the rest of the front matter (format/settings.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from prompt_lsp.checks.findings import Finding, Severity
from prompt_lsp.checks.front_matter import did_you_mean, replace_fixes, suggestion_hint
from prompt_lsp.format.keys import PROMPTY_KINDS, SCHEMA_TYPES
from prompt_lsp.format.language import Dialect
from prompt_lsp.format.model import Entry, PromptDocument

_KEY = re.compile(r"^[A-Za-z_][\w]*\??(?:\((?P<paren>[^)]*)\))?$")
_NAMED_SCHEMA = re.compile(r"^[A-Z][A-Za-z0-9_]*$")
_JSON_SCHEMA_KEYS = frozenset({"type", "properties", "$ref", "items", "anyOf", "oneOf", "allOf"})


def check_picoschema(doc: PromptDocument) -> Iterator[Finding]:
    named_ok = doc.template_format.dialect is Dialect.DOTPROMPT
    for entry in doc.entries:
        where = _schema_place(doc, entry)
        if where is None or entry.key_range is None or not isinstance(entry.path[-1], str):
            continue
        key = entry.path[-1]
        match = _KEY.match(key)
        if match is None:
            continue  # `(*)`, or a key the input checks already report
        paren = match.group("paren")
        if paren is not None:
            written, rng = paren.partition(",")[0].strip(), entry.key_range
        elif isinstance(entry.value, str):
            written, rng = entry.value.partition(",")[0].strip(), entry.value_range
        else:
            continue  # a nested object or an enum list: its entries are checked themselves
        if written.lower() in SCHEMA_TYPES or written.lower() in PROMPTY_KINDS:
            continue
        if named_ok and _NAMED_SCHEMA.match(written):
            continue  # a schema the application registers
        suggestions = did_you_mean(written.lower(), SCHEMA_TYPES)
        yield Finding(
            "invalid-value",
            Severity.ERROR,
            rng,
            f"Unknown type '{written}' for '{key.split('(')[0].rstrip('?')}' in {where}: use one "
            f"of {', '.join(SCHEMA_TYPES[:7])}.{suggestion_hint(suggestions)}",
            fixes=replace_fixes(rng, suggestions, "type") if paren is None else (),
        )


def _schema_place(doc: PromptDocument, entry: Entry) -> str | None:
    """`output.schema` or `input.schema` when `entry` is a Picoschema field there that the input
    checks do not already cover (those are `input.schema`'s own top-level fields)."""
    path = entry.path
    if path[:2] == ("output", "schema") and len(path) >= 3:
        place = "output.schema"
    elif path[:2] == ("input", "schema") and len(path) >= 4:
        place = "input.schema"
    else:
        return None
    if any(isinstance(p, int) for p in path):
        return None  # inside an enum list
    schema = doc.entry(*path[:2])
    if (
        schema is not None
        and isinstance(schema.value, dict)
        and _JSON_SCHEMA_KEYS & set(schema.value)
    ):
        return None  # JSON Schema, not Picoschema
    parent = doc.entry(*path[:-1])
    if parent is not None and len(path) > 3 and not _is_object_key(str(path[-2])):
        return None
    return place


def _is_object_key(key: str) -> bool:
    """`author(object)` or `items(array)` (whose mapping value holds fields), or a bare name."""
    match = _KEY.match(key)
    if match is None:
        return False
    paren = match.group("paren")
    return paren is None or paren.partition(",")[0].strip().lower() in ("object", "array")
