"""End to end over stdio: document symbols, folding ranges, semantic tokens and inlay hints."""

from __future__ import annotations

import asyncio
import time

import pytest
from lsp_helpers import (
    SAMPLE_PROMPT,
    TIMEOUT,
    EditorClient,
    decode_semantic_tokens,
    editor_client,
    position_of,
)
from lsprotocol import types

from prompt_lsp.catalog.models import DEFAULT_MODEL
from prompt_lsp.catalog.tokenizer import count_tokens, tokenizer_label
from prompt_lsp.format import parse

pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

client = editor_client()


def ident(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri)


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n")


# ---------------------------------------------------------------- document symbols


async def test_document_symbols_show_keys_and_roles(client: EditorClient):
    uri = await client.open("news.prompt", SAMPLE_PROMPT)
    params = types.DocumentSymbolParams(ident(uri))
    result = await asyncio.wait_for(client.text_document_document_symbol_async(params), TIMEOUT)
    assert all(isinstance(s, types.DocumentSymbol) for s in result)  # all three are hierarchical
    by_name = {s.name: s for s in result}
    assert [s.name for s in result] == [
        "name",
        "model",
        "config",
        "input",
        "examples",
        "metrics",
        "system",
        "user",
    ]
    assert by_name["model"].detail == "openai/gpt-4o-mini"
    assert [c.name for c in by_name["config"].children] == ["temperature", "max_tokens"]
    schema, default = by_name["input"].children
    assert (schema.name, default.name) == ("schema", "default")
    fields = {c.name: c for c in schema.children}
    assert list(fields) == ["article", "sentences"]  # the name, without `?`
    assert fields["article"].kind == types.SymbolKind.Variable
    assert fields["article"].detail == "string, the article to summarize"
    assert fields["sentences"].selection_range.start == position_of(
        SAMPLE_PROMPT, "sentences?", client.encoding
    )
    assert [c.name for c in by_name["metrics"].children] == ["rougeL"]
    system = by_name["system"]
    assert system.detail == "You are a careful news editor."
    assert system.selection_range.start.line == line_of(SAMPLE_PROMPT, "system:")
    user = by_name["user"]
    assert user.detail.startswith("Summarize the following article")
    assert user.range.end.line >= line_of(SAMPLE_PROMPT, "Article:")

    def check_nesting(symbol: types.DocumentSymbol) -> None:
        def inside(inner: types.Range, outer: types.Range) -> bool:
            key = lambda p: (p.line, p.character)  # noqa: E731
            return key(outer.start) <= key(inner.start) and key(inner.end) <= key(outer.end)

        assert inside(symbol.selection_range, symbol.range), symbol.name
        for child in symbol.children or []:
            assert inside(child.range, symbol.range), (symbol.name, child.name)
            check_nesting(child)

    for symbol in result:
        check_nesting(symbol)


def _flat(capabilities: types.ClientCapabilities) -> None:
    capabilities.text_document.document_symbol.hierarchical_document_symbol_support = False


flat_client = editor_client(["neovim@v0.10.0"], tweak=_flat)


async def test_flat_symbols_for_clients_without_hierarchy(flat_client: EditorClient):
    uri = await flat_client.open("news.prompt", SAMPLE_PROMPT)
    params = types.DocumentSymbolParams(ident(uri))
    result = await asyncio.wait_for(
        flat_client.text_document_document_symbol_async(params), TIMEOUT
    )
    assert all(isinstance(s, types.SymbolInformation) for s in result)
    names = [(s.name, s.container_name) for s in result]
    assert ("system", None) in names and ("user", None) in names
    assert ("article", "schema") in names and ("schema", "input") in names


# ---------------------------------------------------------------- folding ranges


async def test_folding_ranges_cover_front_matter_messages_and_blocks(client: EditorClient):
    uri = await client.open("news.prompt", SAMPLE_PROMPT)
    params = types.FoldingRangeParams(ident(uri))
    result = await asyncio.wait_for(client.text_document_folding_range_async(params), TIMEOUT)
    folds = {(f.start_line, f.end_line) for f in result}
    lines = SAMPLE_PROMPT.split("\n")
    close = lines.index("---", 1)
    assert (0, close) in folds  # the front matter
    for_line = line_of(SAMPLE_PROMPT, "{% for")
    assert (for_line, line_of(SAMPLE_PROMPT, "{% endfor") - 1) in folds  # `endfor` stays visible
    assert (line_of(SAMPLE_PROMPT, "system:"), line_of(SAMPLE_PROMPT, "You are")) in folds
    assert (line_of(SAMPLE_PROMPT, "user:"), line_of(SAMPLE_PROMPT, "Article:")) in folds
    assert (line_of(SAMPLE_PROMPT, "input:"), line_of(SAMPLE_PROMPT, "    sentences: 3")) in folds
    assert all(f.end_line > f.start_line for f in result)
    wants_text = client.spec == "neovim@v0.11.0"  # the one client announcing collapsedText
    assert any(f.collapsed_text for f in result) == wants_text


# ---------------------------------------------------------------- semantic tokens

SMALL = """\
---
input:
  schema:
    name: string, who
---
user:
Héllo 👋 {{ name | upper }} <|im_end|>
{% for x in items if x is defined %}{{ x }}{% endfor %}
"""


async def test_semantic_tokens_decode_to_expected(client: EditorClient):
    uri = await client.open("small.prompt", SMALL)
    provider = client.server_capabilities.semantic_tokens_provider
    assert provider.full and provider.range
    params = types.SemanticTokensParams(ident(uri))
    result = await asyncio.wait_for(
        client.text_document_semantic_tokens_full_async(params), TIMEOUT
    )
    tokens = decode_semantic_tokens(result.data, provider.legend)

    def at(needle: str, length: int | None = None, nth: int = 0) -> tuple[int, int, int]:
        start = position_of(SMALL, needle, client.encoding, nth=nth)
        end = position_of(SMALL, needle, client.encoding, nth=nth, offset=length or len(needle))
        return start.line, start.character, end.character - start.character

    expected = [
        (*at("name"), "variable", {"declaration"}),
        (*at("string"), "type", {"defaultLibrary"}),
        (*at("user:"), "type", set()),
        (*at("name", nth=1), "variable", set()),
        (*at("upper"), "function", {"defaultLibrary"}),
        (*at("<|im_end|>"), "macro", {"defaultLibrary"}),
        (*at("for"), "keyword", set()),
        (*at("x in", 1), "parameter", set()),
        (*at("items"), "variable", set()),
        (*at("x is", 1), "parameter", set()),
        (*at("defined"), "function", {"defaultLibrary"}),  # a test: colored as a function
        (*at("x }}", 1), "parameter", set()),
        (*at("endfor"), "keyword", set()),
    ]
    assert tokens == expected
    # utf-16 and utf-8 differ after the emoji: the test above used the client's encoding
    name_column = position_of(SMALL, "name |", client.encoding).character
    assert name_column == {"utf-8": 15, "utf-16": 12}[client.encoding]

    # a range request returns the tokens inside it, encoded from the range's first token
    line = line_of(SMALL, "{% for")
    rng = types.Range(types.Position(line, 0), types.Position(line + 1, 0))
    params = types.SemanticTokensRangeParams(ident(uri), rng)
    ranged = await asyncio.wait_for(
        client.text_document_semantic_tokens_range_async(params), TIMEOUT
    )
    assert decode_semantic_tokens(ranged.data, provider.legend) == [
        t for t in expected if t[0] == line
    ]


# ---------------------------------------------------------------- inlay hints


def message_counts(text: str, model: str) -> list[int]:
    return [count_tokens(m.text, model) for m in parse(text).messages]


async def inlay_hints(client: EditorClient, uri: str, rng: types.Range) -> list[types.InlayHint]:
    params = types.InlayHintParams(ident(uri), rng)
    return await asyncio.wait_for(client.text_document_inlay_hint_async(params), TIMEOUT)


def whole(text: str) -> types.Range:
    return types.Range(types.Position(0, 0), types.Position(text.count("\n") + 1, 0))


async def test_inlay_hints_count_tokens_per_message_and_in_all(client: EditorClient):
    uri = await client.open("news.prompt", SAMPLE_PROMPT)
    started = time.perf_counter()
    hints = await inlay_hints(client, uri, whole(SAMPLE_PROMPT))
    first = time.perf_counter() - started
    system, user = message_counts(SAMPLE_PROMPT, "openai/gpt-4o-mini")
    exact = not tokenizer_label("openai/gpt-4o-mini").startswith("≈")
    approx = "" if exact else "≈ "
    lines = SAMPLE_PROMPT.split("\n")
    got = [(h.position.line, h.position.character, h.label) for h in hints]

    def end(line: int) -> int:
        return position_of(
            SAMPLE_PROMPT, lines[line], client.encoding, offset=len(lines[line])
        ).character

    system_line, user_line = line_of(SAMPLE_PROMPT, "system:"), line_of(SAMPLE_PROMPT, "user:")
    assert got == [
        (0, 3, f"{approx}{system + user} tokens in all"),
        (system_line, end(system_line), f"{approx}{system} tokens"),
        (user_line, end(user_line), f"{approx}{user} tokens"),
    ]
    assert all(h.padding_left for h in hints)
    assert "gpt-4o-mini" in hints[0].tooltip

    # only the hints inside the requested range; a second request is served from the cache
    started = time.perf_counter()
    rng = types.Range(types.Position(system_line, 0), types.Position(system_line + 1, 0))
    hints = await inlay_hints(client, uri, rng)
    again = time.perf_counter() - started
    assert [h.label for h in hints] == [f"{approx}{system} tokens"]
    assert again < max(first, 0.5)


async def test_inlay_hints_follow_edits_and_the_default_model(client: EditorClient):
    text = "Tell me about {{ topic }} in café style ☕.\n"
    uri = await client.open("bare.prompt", text)
    hints = await inlay_hints(client, uri, whole(text))
    (count,) = message_counts(text, DEFAULT_MODEL)
    assert [(h.position.line, h.label) for h in hints] == [(0, f"≈ {count} tokens in all")]
    assert hints[0].position == position_of(text, "\n", client.encoding)

    changed = "system:\nBe brief.\nuser:\n" + text
    await client.change(uri, changed)
    hints = await inlay_hints(client, uri, whole(changed))
    system, user = message_counts(changed, DEFAULT_MODEL)
    assert [h.label for h in hints] == [
        f"≈ {system + user} tokens in all",
        f"≈ {user} tokens",
    ]  # the system marker is on line 0: the total takes its place
