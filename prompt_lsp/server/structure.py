"""Document symbols (outline), folding ranges and semantic tokens.

All three are pure functions of one parsed version, computed once and cached in `state.caches`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from lsprotocol import types

from prompt_lsp.format.handlebars import HELPERS
from prompt_lsp.format.keys import SCHEMA_TYPES
from prompt_lsp.format.model import Entry, Message, PromptDocument, Range
from prompt_lsp.format.rename import declaration_range
from prompt_lsp.format.template import environment
from prompt_lsp.format.text import one_line
from prompt_lsp.server.convert import Positions
from prompt_lsp.server.server import PromptServer, contained
from prompt_lsp.server.state import DocumentState

# ---------------------------------------------------------------- document symbols

MAX_SYMBOL_DEPTH = 4
SCHEMA_PARENTS = {("input", "schema"), ("input", "schema", "properties"), ("inputs",)}
DETAIL_CHARS = 48


def _entry_name(entry: Entry) -> str:
    key = entry.path[-1]
    if isinstance(key, str):
        return key or '""'
    value = entry.value
    if isinstance(value, dict) and isinstance(value.get("name"), (str, int, float)):
        return one_line(str(value["name"]), DETAIL_CHARS) or f"[{key}]"
    if isinstance(value, (str, int, float, bool)):
        return one_line(str(value), DETAIL_CHARS) or f"[{key}]"
    return f"[{key}]"


def _entry_kind(entry: Entry) -> types.SymbolKind:
    value = entry.value
    if isinstance(value, dict):
        return types.SymbolKind.Object
    if isinstance(value, list):
        return types.SymbolKind.Array
    return types.SymbolKind.Property


def _entry_detail(entry: Entry) -> str | None:
    value = entry.value
    if isinstance(value, dict):
        return None
    if isinstance(value, list):
        return f"{len(value)} item{'s' if len(value) != 1 else ''}"
    if value is None or not isinstance(entry.path[-1], str):
        return None
    return one_line(str(value).lower() if isinstance(value, bool) else str(value), DETAIL_CHARS)


@dataclass
class Symbol:
    """A DocumentSymbol in code points, before conversion."""

    name: str
    kind: types.SymbolKind
    range: Range
    selection: Range
    detail: str | None = None
    children: list[Symbol] | None = None


def _cover(outer: Range, inner: Range) -> Range:
    return Range(min(outer.start, inner.start), max(outer.end, inner.end))


def document_symbols(doc: PromptDocument) -> list[Symbol]:
    """Front matter keys (nested mappings as children, schema fields as variables) then one
    symbol per message."""
    fields = {f.range.start: f for f in doc.schema}
    symbols: list[Symbol] = []
    by_path: dict[tuple, Symbol] = {}
    for entry in doc.entries:
        if len(entry.path) > MAX_SYMBOL_DEPTH:
            continue
        selection = entry.key_range or entry.value_range
        whole = _cover(selection, entry.value_range)
        schema_field = fields.get(entry.key_range.start) if entry.key_range else None
        if schema_field is not None and entry.path[:-1] in SCHEMA_PARENTS:
            name_range = declaration_range(doc, schema_field.range, schema_field.name)
            symbol = Symbol(
                schema_field.name,
                types.SymbolKind.Variable,
                whole,
                name_range if name_range and whole.contains(name_range.start) else selection,
                one_line(
                    ", ".join(p for p in (schema_field.raw_type, schema_field.description) if p),
                    DETAIL_CHARS,
                )
                or None,
            )
        else:
            symbol = Symbol(
                _entry_name(entry), _entry_kind(entry), whole, selection, _entry_detail(entry)
            )
        by_path[entry.path] = symbol
        parent = by_path.get(entry.path[:-1]) if len(entry.path) > 1 else None
        if parent is not None:
            parent.children = (parent.children or []) + [symbol]
            parent.range = _cover(parent.range, symbol.range)
        elif len(entry.path) == 1:
            symbols.append(symbol)
    symbols.extend(_message_symbol(doc, m) for m in doc.messages)
    return symbols


def _message_symbol(doc: PromptDocument, message: Message) -> Symbol:
    body = message.body_range
    if message.marker_range is not None:
        selection = message.marker_range
        whole = _cover(Range(message.marker_range.start, body.end), selection)
    else:  # text before the first marker: its first line
        first = body.start.line
        selection = Range.of(first, 0, end=len(doc.lines[first]) if first < len(doc.lines) else 0)
        whole = _cover(body, selection)
    return Symbol(
        message.role,
        types.SymbolKind.Namespace,
        whole,
        selection,
        one_line(message.text, DETAIL_CHARS) or None,
    )


def _to_document_symbol(symbol: Symbol, positions: Positions) -> types.DocumentSymbol:
    return types.DocumentSymbol(
        name=symbol.name,
        kind=symbol.kind,
        range=positions.range(symbol.range),
        selection_range=positions.range(symbol.selection),
        detail=symbol.detail,
        children=[_to_document_symbol(c, positions) for c in symbol.children]
        if symbol.children
        else None,
    )


def _to_symbol_information(
    symbols: list[Symbol], positions: Positions, uri: str, container: str | None = None
) -> list[types.SymbolInformation]:
    flat: list[types.SymbolInformation] = []
    for symbol in symbols:
        flat.append(
            types.SymbolInformation(
                name=symbol.name,
                kind=symbol.kind,
                location=types.Location(uri, positions.range(symbol.range)),
                container_name=container,
            )
        )
        if symbol.children:
            flat.extend(_to_symbol_information(symbol.children, positions, uri, symbol.name))
    return flat


# ---------------------------------------------------------------- folding ranges


@dataclass(frozen=True)
class Fold:
    start: int
    end: int
    collapsed: str | None = None


def folding_ranges(doc: PromptDocument) -> list[Fold]:
    """The front matter, multi-line front matter values, each message and each multi-line
    Jinja block (up to the line before its end tag when that tag starts its own line)."""
    folds: list[Fold] = []
    if doc.front_matter_range is not None:
        rng = doc.front_matter_range
        folds.append(Fold(rng.start.line, rng.end.line, "--- front matter ---"))
    for entry in doc.entries:
        if entry.key_range is None or not isinstance(entry.value, (dict, list)):
            continue
        end = entry.value_range.end
        last = end.line - 1 if end.character == 0 else end.line
        folds.append(Fold(entry.key_range.start.line, last, f"{entry.path[-1]}: …"))
    for message in doc.messages:
        start = (message.marker_range or message.body_range).start.line
        last = message.body_range.end.line
        while last > start and not doc.lines[last].strip():
            last -= 1
        folds.append(Fold(start, last, f"{message.role}: {one_line(message.text, 40)}"))
    for block in doc.blocks:
        end = block.range.end
        line = doc.lines[end.line] if end.line < len(doc.lines) else ""
        tag_start = line.rfind("{%", 0, end.character)
        own_line = tag_start >= 0 and not line[:tag_start].strip()
        last = end.line - 1 if own_line else end.line
        folds.append(Fold(block.range.start.line, last, f"{{% {block.tag} … %}}"))
    unique = {(f.start, f.end): f for f in folds if f.end > f.start}
    return sorted(unique.values(), key=lambda f: (f.start, -f.end))


# ---------------------------------------------------------------- semantic tokens

TOKEN_TYPES = [
    types.SemanticTokenTypes.Variable,  # input variables (template uses and declarations)
    types.SemanticTokenTypes.Parameter,  # Jinja locals: loop variables, `set` names, macro args
    types.SemanticTokenTypes.Function,  # filters and tests
    types.SemanticTokenTypes.Keyword,  # Jinja tags
    types.SemanticTokenTypes.Macro,  # special tokens and angle tags
    types.SemanticTokenTypes.Type,  # role markers, schema types
]
TOKEN_MODIFIERS = [
    types.SemanticTokenModifiers.Declaration,
    types.SemanticTokenModifiers.DefaultLibrary,
]
LEGEND = types.SemanticTokensLegend(
    token_types=[str(t.value) for t in TOKEN_TYPES],
    token_modifiers=[str(m.value) for m in TOKEN_MODIFIERS],
)
_TYPE = {str(t.value): i for i, t in enumerate(TOKEN_TYPES)}
DECLARATION = 1 << 0
DEFAULT_LIBRARY = 1 << 1
IN_THREAD_ABOVE = 2_000  # names and tokens: past this, semantic tokens are computed in a thread


@dataclass(frozen=True, order=True)
class SemanticToken:
    """One token in client units: absolute line and start, length, type index, modifier bits."""

    line: int
    start: int
    length: int
    type: int
    modifiers: int = 0


def _raw_tokens(doc: PromptDocument) -> list[tuple[Range, int, int]]:
    env = environment()
    found: list[tuple[Range, int, int]] = []
    for schema_field in doc.schema:
        name_range = declaration_range(doc, schema_field.range, schema_field.name)
        if name_range is not None:
            found.append((name_range, _TYPE["variable"], DECLARATION))
        if schema_field.type_range is not None:
            builtin = DEFAULT_LIBRARY if schema_field.type in SCHEMA_TYPES else 0
            found.append((schema_field.type_range, _TYPE["type"], builtin))
    for message in doc.messages:
        if message.marker_range is not None:
            found.append((message.marker_range, _TYPE["type"], 0))
    for use in doc.names:
        if use.kind == "variable":
            found.append((use.range, _TYPE["variable"], 0))
        elif use.kind == "local":
            found.append((use.range, _TYPE["parameter"], DEFAULT_LIBRARY * (use.name == "loop")))
        elif use.kind in ("filter", "test"):
            builtin = use.name in (env.filters if use.kind == "filter" else env.tests)
            found.append((use.range, _TYPE["function"], DEFAULT_LIBRARY * builtin))
        elif use.kind == "tag":
            found.append((use.range, _TYPE["keyword"], 0))
        elif use.kind == "helper":
            builtin = DEFAULT_LIBRARY * (use.name in HELPERS)
            found.append((use.range, _TYPE["function"], builtin))
    for token in doc.tokens:
        found.append((token.range, _TYPE["macro"], DEFAULT_LIBRARY * token.known))
    return found


def semantic_tokens(doc: PromptDocument, positions: Positions) -> list[SemanticToken]:
    """Sorted, non-overlapping, single-line tokens in client units."""
    tokens: list[SemanticToken] = []
    lines = doc.lines
    for rng, token_type, modifiers in _raw_tokens(doc):
        line, start, end = rng.start.line, rng.start.character, rng.end.character
        if rng.end.line != line or end <= start or line >= len(lines):
            continue
        if not lines[line].isascii():  # ASCII columns are the same in every encoding
            start = positions.to_client(rng.start).character
            end = positions.to_client(rng.end).character
        if end > start:
            tokens.append(SemanticToken(line, start, end - start, token_type, modifiers))
    tokens.sort()
    result: list[SemanticToken] = []
    for token in tokens:
        previous = result[-1] if result else None
        if (
            previous
            and previous.line == token.line
            and token.start < previous.start + previous.length
        ):
            continue  # overlapping: the first wins
        result.append(token)
    return result


def encode(tokens: list[SemanticToken]) -> list[int]:
    """LSP's relative encoding: deltaLine, deltaStart, length, type, modifiers per token."""
    data: list[int] = []
    line, start = 0, 0
    for token in tokens:
        delta_line = token.line - line
        data += [
            delta_line,
            token.start - start if delta_line == 0 else token.start,
            token.length,
            token.type,
            token.modifiers,
        ]
        line, start = token.line, token.start
    return data


# ---------------------------------------------------------------- handlers


def _cached(state: DocumentState, key: str, compute: Any) -> Any:
    if key not in state.caches:
        state.caches[key] = compute()
    return state.caches[key]


def _hierarchical(ls: PromptServer) -> bool:
    text_document = ls.client_capabilities.text_document
    symbol = text_document.document_symbol if text_document else None
    return bool(symbol and symbol.hierarchical_document_symbol_support)


def _folding_capabilities(ls: PromptServer) -> tuple[int | None, bool]:
    text_document = ls.client_capabilities.text_document
    folding = text_document.folding_range if text_document else None
    if folding is None:
        return None, False
    collapsed = bool(folding.folding_range and folding.folding_range.collapsed_text)
    return folding.range_limit, collapsed


def register(ls: PromptServer) -> None:
    @ls.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @contained()
    def document_symbol(
        ls: PromptServer, params: types.DocumentSymbolParams
    ) -> list[types.DocumentSymbol] | list[types.SymbolInformation] | None:
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        symbols = _cached(state, "structure.symbols", lambda: document_symbols(state.doc))
        if _hierarchical(ls):
            return [_to_document_symbol(s, state.positions) for s in symbols]
        return _to_symbol_information(symbols, state.positions, state.uri)

    @ls.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)
    @contained()
    def folding_range(
        ls: PromptServer, params: types.FoldingRangeParams
    ) -> list[types.FoldingRange] | None:
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        folds = _cached(state, "structure.folds", lambda: folding_ranges(state.doc))
        limit, collapsed = _folding_capabilities(ls)
        if limit is not None:
            folds = folds[:limit]
        return [
            types.FoldingRange(
                start_line=f.start,
                end_line=f.end,
                collapsed_text=f.collapsed if collapsed else None,
            )
            for f in folds
        ]

    async def _tokens(state: DocumentState) -> list[SemanticToken]:
        key = "structure.semantic"
        if key not in state.caches:
            doc = state.doc
            if len(doc.names) + len(doc.tokens) > IN_THREAD_ABOVE:  # a long template
                computed = await asyncio.to_thread(semantic_tokens, doc, state.positions)
            else:
                computed = semantic_tokens(doc, state.positions)
            state.caches.setdefault(key, computed)
        return state.caches[key]

    @ls.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, LEGEND)
    @contained()
    async def semantic_tokens_full(
        ls: PromptServer, params: types.SemanticTokensParams
    ) -> types.SemanticTokens | None:
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        tokens = await _tokens(state)
        data = _cached(state, "structure.semantic.data", lambda: encode(tokens))
        return types.SemanticTokens(data=list(data))

    @ls.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_RANGE, LEGEND)
    @contained()
    async def semantic_tokens_range(
        ls: PromptServer, params: types.SemanticTokensRangeParams
    ) -> types.SemanticTokens | None:
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        start, end = params.range.start, params.range.end
        inside = [
            t
            for t in await _tokens(state)
            if (t.line, t.start) >= (start.line, start.character)
            and (t.line, t.start + t.length) <= (end.line, end.character)
        ]
        return types.SemanticTokens(data=encode(inside))


__all__ = [
    "LEGEND",
    "SemanticToken",
    "document_symbols",
    "encode",
    "folding_ranges",
    "semantic_tokens",
]
