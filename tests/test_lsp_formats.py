"""End to end over stdio: a Dotprompt and a Prompty file in a real editor session get the same
features as our own `.prompt`: diagnostics without false errors, completion of Dotprompt's
helpers, hover, go to a partial's file, folding of `{{#each}}` blocks, semantic tokens."""

from __future__ import annotations

import asyncio

import pytest
from lsp_helpers import TIMEOUT, EditorClient, editor_client, uri_of
from lsprotocol import types

pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

client = editor_client()

DOTPROMPT = """\
---
model: googleai/gemini-2.5-flash
config:
  maxOutputTokens: 200
input:
  schema:
    topic: string, what to write about
    tags(array): string
---
{{role "system"}}
{{> style}}
{{role "user"}}
Write about {{topic}}.
{{#each tags as |tag|}}
- {{tag}} ({{@index}})
{{/each}}
{{ }}
"""

PROMPTY = """\
---
name: greet
inputs:
  - name: who
    kind: string
  - name: photo
    kind: image
---
You greet people.

developer:
Keep it short.
user[name="Alice"]:
Hello {{ who }} {{ photo }}
"""


def ident(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri)


async def _errors(client: EditorClient, uri: str) -> list[types.Diagnostic]:
    diagnostics = client.diagnostics.get(uri, [])
    return [d for d in diagnostics if d.severity == types.DiagnosticSeverity.Error]


async def test_dotprompt_file_in_the_editor(client: EditorClient):
    client.write("_style.prompt", "Write plainly.")
    uri = await client.open("post.prompt", DOTPROMPT.replace("{{ }}\n", ""))
    assert await _errors(client, uri) == []

    # completion inside `{{`: Dotprompt's helpers, then the block helpers after `{{#`
    text = DOTPROMPT
    await client.change(uri, text)
    line = text.split("\n").index("{{ }}")
    pos = types.Position(line, 2)
    result = await asyncio.wait_for(
        client.text_document_completion_async(types.CompletionParams(ident(uri), pos)), TIMEOUT
    )
    labels = {item.label for item in (result.items if result else [])}
    assert {"role", "history", "media", "section", "json", "ifEquals", "each", "topic"} <= labels

    # hover on a helper
    helper = text.index('role "user"')
    hover_pos = _position(text, helper + 1)
    hovered = await asyncio.wait_for(
        client.text_document_hover_async(types.HoverParams(ident(uri), hover_pos)), TIMEOUT
    )
    assert hovered is not None and "role" in hovered.contents.value

    # go to the partial's file
    at = _position(text, text.index("style}}") + 1)
    found = await asyncio.wait_for(
        client.text_document_definition_async(types.DefinitionParams(ident(uri), at)), TIMEOUT
    )
    target = found[0]
    target_uri = target.target_uri if isinstance(target, types.LocationLink) else target.uri
    assert target_uri == uri_of(client.root / "_style.prompt")

    # the `{{#each}}` block folds
    folds = await asyncio.wait_for(
        client.text_document_folding_range_async(types.FoldingRangeParams(ident(uri))), TIMEOUT
    )
    if folds is not None:  # Neovim 0.10 has no folding capability
        each = text.split("\n").index("{{#each tags as |tag|}}")
        assert any(f.start_line == each for f in folds)


async def test_dotprompt_syntax_error_and_missing_partial_in_the_editor(client: EditorClient):
    text = '{{role "user"}}\n{{> nowhere}}\n{{#if ready}}\nyes\n'
    uri = await client.open("broken.prompt", text)
    diagnostics = client.diagnostics.get(uri, [])
    by_code = {d.code: d for d in diagnostics}
    assert by_code["template-syntax"].range.start == types.Position(2, 0)
    assert "never closed" in by_code["template-syntax"].message
    assert by_code["partial-not-found"].range.start == types.Position(1, 4)


async def test_prompty_file_in_the_editor(client: EditorClient):
    uri = await client.open("greet.prompty", PROMPTY)
    assert await _errors(client, uri) == []
    pos = _position(PROMPTY, PROMPTY.index("developer:") + 2)
    hovered = await asyncio.wait_for(
        client.text_document_hover_async(types.HoverParams(ident(uri), pos)), TIMEOUT
    )
    assert hovered is not None and "developer" in hovered.contents.value
    symbols = await asyncio.wait_for(
        client.text_document_document_symbol_async(types.DocumentSymbolParams(ident(uri))),
        TIMEOUT,
    )
    names = [s.name for s in symbols or []]
    # Prompty: the text before the first marker is the system message
    assert names[-3:] == ["system", "developer", "user"]


def _position(text: str, offset: int) -> types.Position:
    """ASCII text: the same position in every encoding."""
    before = text[:offset]
    line = before.count("\n")
    return types.Position(line, offset - (before.rfind("\n") + 1))
