"""Hover: what a variable, special token, model, metric, filter or front matter key is."""

from __future__ import annotations

import asyncio
import re

from lsprotocol import types

from prompt_lsp.catalog.metrics import METRICS
from prompt_lsp.catalog.models import lookup_model
from prompt_lsp.catalog.tokens import lookup_token
from prompt_lsp.evaluation.api import load_examples
from prompt_lsp.format.examples import ExampleSet
from prompt_lsp.format.keys import SECTIONS
from prompt_lsp.format.model import Position, PromptDocument, Range
from prompt_lsp.format.template import environment
from prompt_lsp.format.text import one_line
from prompt_lsp.server.completion import JINJA_TAGS, ROLE_DOCS
from prompt_lsp.server.context import in_front_matter, key_at, name_at, token_at, yaml_path_at
from prompt_lsp.server.server import PromptServer, contained
from prompt_lsp.server.state import DocumentState

SAMPLE_VALUES = 3
MAX_VALUE_CHARS = 80


def register(ls: PromptServer) -> None:
    @ls.feature(types.TEXT_DOCUMENT_HOVER)
    @contained(default=None)
    async def hover(ls: PromptServer, params: types.HoverParams) -> types.Hover | None:
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        pos = state.positions.from_client(params.position)
        for provider in ls.hover_providers:  # they may read the history: off the event loop
            text = await asyncio.to_thread(provider, ls, state, pos)
            if text:
                return _hover(text, None, state)
        found = describe(state, pos)
        if found is None:
            return None
        return _hover(found[0], found[1], state)


def _hover(text: str, rng: Range | None, state: DocumentState) -> types.Hover:
    return types.Hover(
        contents=types.MarkupContent(types.MarkupKind.Markdown, text),
        range=state.positions.range(rng) if rng else None,
    )


def describe(state: DocumentState, pos: Position) -> tuple[str, Range | None] | None:
    doc = state.doc
    if (use := name_at(doc, pos)) is not None:
        text = {
            "variable": lambda: _variable(state, use.name),
            "local": lambda: f"`{use.name}`: local name bound in the template",
            "filter": lambda: _jinja_callable("filter", use.name, environment().filters),
            "test": lambda: _jinja_callable("test", use.name, environment().tests),
            "tag": lambda: f"`{{% {use.name} %}}`: {JINJA_TAGS.get(use.name, 'Jinja tag')}",
        }[use.kind]()
        return text, use.range
    if (token := token_at(doc, pos)) is not None:
        return _token(state, token.text), token.range
    for message in doc.messages:
        if message.marker_range is not None and message.marker_range.contains(pos):
            return f"**{message.role}:** {ROLE_DOCS[message.role]}", message.marker_range
    if (metric := _metric_at(doc, pos)) is not None:
        name, rng = metric
        return f"**{name}** (metric)\n\n{METRICS[name].description}", rng
    key = key_at(doc, pos)
    if key is not None:
        return _key(state, key.path, key.on_key, pos)
    return None


_WORD = re.compile(r"\w+")


def _metric_at(doc: PromptDocument, pos: Position) -> tuple[str, Range] | None:
    """A metric name under `metrics:` at the cursor: `- rougeL`, `- {name: rouge1}`,
    `- name: rouge1` or `metrics: [rougeL]`."""
    if not in_front_matter(doc, pos.line):
        return None
    text = doc.lines[pos.line]
    word = next((m for m in _WORD.finditer(text) if m.start() <= pos.character <= m.end()), None)
    if word is None or word.group() not in METRICS:
        return None
    stripped = text.lstrip()
    # a list item may sit at its parent key's indentation: count the dash as one more column
    indent = len(text) - len(stripped) + (1 if stripped.startswith("-") else 0)
    if not stripped.startswith("metrics:") and yaml_path_at(doc.lines, pos.line, indent)[:1] != (
        "metrics",
    ):
        return None
    return word.group(), Range.of(pos.line, word.start(), end=word.end())


def _variable(state: DocumentState, name: str) -> str:
    doc = state.doc
    field = doc.schema_field(name)
    lines = [
        f"**{name}**"
        + (f": `{field.type}`" if field else "")
        + (" (optional)" if field and field.optional else "")
    ]
    if field and field.description:
        lines.append(field.description)
    if name in doc.defaults:
        lines.append(f"Default: `{one_line(doc.defaults[name], MAX_VALUE_CHARS)}`")
    if field is None and name not in doc.defaults:
        lines.append("Not declared in `input.schema`.")
    examples = load_examples(doc, state.path)
    if examples and examples.examples:
        given, distinct = _example_values(examples, name)
        if distinct:
            lines.append(f"Examples ({given} of {len(examples.examples)} give it):")
            lines.extend(f"- `{v}`" for v in distinct)
    return "\n\n".join(lines)


# The examples' values per variable, for the last few example sets (a set read from a file is
# shared until the file changes): 5,000 examples take milliseconds to go through on every hover.
_values: dict[int, tuple[ExampleSet, dict[str, tuple[int, list[str]]]]] = {}


def _example_values(examples: ExampleSet, name: str) -> tuple[int, list[str]]:
    """How many examples give `name`, and the first few distinct values, shortened."""
    held = _values.get(id(examples))
    if held is None or held[0] is not examples:
        while len(_values) >= 4:
            del _values[next(iter(_values))]
        held = _values[id(examples)] = (examples, {})
    found = held[1].get(name)
    if found is None:
        given, distinct = 0, {}
        for example in examples.examples:
            if name in example.inputs:
                given += 1
                if len(distinct) < SAMPLE_VALUES:
                    distinct.setdefault(one_line(example.inputs[name], MAX_VALUE_CHARS), None)
        found = held[1][name] = (given, list(distinct))
    return found


def _jinja_callable(kind: str, name: str, table: dict) -> str:
    func = table.get(name)
    if func is None:
        return f"Unknown Jinja {kind} `{name}`."
    doc = (func.__doc__ or "").strip().split("\n\n")[0]
    return f"**{name}** (Jinja {kind})\n\n{' '.join(doc.split())}"


def _token(state: DocumentState, text: str) -> str:
    token = lookup_token(text)
    if token is not None:
        return f"**{text}** — {token.family} special token\n\n{token.meaning}"
    if text in state.doc.settings.tokens:
        return f"**{text}** — declared in this file's `tokens:`"
    return f"**{text}** — a tag of this prompt (not a model special token)"


def _key(
    state: DocumentState, path: tuple[str, ...], on_key: bool, pos: Position
) -> tuple[str, Range | None] | None:
    doc = state.doc
    key = path[-1]
    if not on_key and path == ("model",) and doc.model_id:
        info = lookup_model(doc.model_id)
        if info is None:
            return f"**{doc.model_id}**\n\nNot in litellm's model list.", None
        return f"**{info.id}**\n\n{info.describe()}", None
    if path[:1] == ("metrics",) or (path[-2:-1] == ("-",) and path[0] == "metrics"):
        words = set(_WORD.findall(doc.lines[pos.line]))
        for name, info in METRICS.items():
            if name in words:
                return f"**{name}**\n\n{info.description}", None
    spec = SECTIONS.get(path[:-1], {}).get(key)
    if spec is not None:
        example = f"\n\n```yaml\n{spec.example}\n```" if spec.example else ""
        return f"**{key}** ({spec.kind})\n\n{spec.doc}{example}", None
    if path[:-1] == ("input", "schema"):
        field = doc.schema_field(key.rstrip("?"))
        if field is not None:
            return _variable(state, field.name), None
    return None
