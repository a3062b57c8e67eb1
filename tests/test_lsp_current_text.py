"""Every answer is about the text the client sent last, however fast the edits come: bursts of
edits are sent without waiting for diagnostics, and each kind of request that follows is
answered for the final text (never for the last version the debounced checks analysed).

No sleeps: a request sent after a notification is handled after it (one ordered stream)."""

from __future__ import annotations

import pytest
from lsp_helpers import EditorClient, editor_client
from lsprotocol import types

pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

# A long debounce, so every request below arrives while the debounced check is still pending.
client = editor_client(
    ("neovim@v0.10.0", "visual_studio_code@v1.65.2"), settings={"debounce": 3000}
)

BASE = """\
---
name: burst
model: openai/gpt-4o-mini
input:
  schema:
    article: string, the article
examples:
  - {id: a, input: {article: Rain fell.}, expected: It rained.}
---
Summarize {{ article }} about {{ topic }}.
"""

DECLARED = BASE.replace(
    "    article: string, the article\n",
    "    article: string, the article\n    topic?: string, what the summary is about\n",
).replace(
    "  - {id: a, input: {article: Rain fell.}, expected: It rained.}\n",
    "  - {id: a, input: {article: Rain fell.}, expected: It rained.}\n"
    "  - {id: b, input: {article: Sun shone., topic: weather}, expected: Sunny.}\n",
)
DECLARED_WITH_LOOP = DECLARED.replace(
    "Summarize {{ article }} about {{ topic }}.\n",
    "Summarize {{ article }} about {{ topic }}.\n{% for word in topic %}\n{{ word }}\n{% endfor %}\n",
)


def burst(client: EditorClient, uri: str, *texts: str) -> None:
    """Send edits one after the other, waiting for nothing."""
    for text in texts:
        client.versions[uri] += 1
        client.texts[uri] = text
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    version=client.versions[uri], uri=uri
                ),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text)],
            )
        )


def doc(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri)


async def test_quick_fix_right_after_edits_that_end_at_the_original_text(client: EditorClient):
    uri = await client.open("burst.prompt", BASE)
    (held,) = [d for d in client.diagnostics[uri] if d.code == "undefined-variable"]
    burst(client, uri, BASE.replace("topic", "subject"), BASE + "\n", BASE)
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(doc(uri), held.range, types.CodeActionContext([held]))
    )
    titles = [a.title for a in actions or []]
    assert "Declare 'topic' in input.schema" in titles


async def test_quick_fix_offered_right_after_the_edit_that_makes_the_problem(
    client: EditorClient,
):
    clean = BASE.replace(" about {{ topic }}", "")
    uri = await client.open("burst.prompt", clean)
    assert not [d for d in client.diagnostics[uri] if d.code == "undefined-variable"]
    burst(client, uri, clean + "x", BASE)
    where = client.range_of(uri, "topic")
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(doc(uri), where, types.CodeActionContext([]))
    )
    assert "Declare 'topic' in input.schema" in [a.title for a in actions or []]


async def test_every_request_answers_for_the_final_text(client: EditorClient):
    uri = await client.open("burst.prompt", BASE)
    burst(client, uri, BASE.replace("Summarize", "Sum"), DECLARED, DECLARED_WITH_LOOP)

    # completion offers the variable the last edit declared, with its description
    completion = await client.text_document_completion_async(
        types.CompletionParams(doc(uri), client.position_of(uri, "{{ topic", offset=3))
    )
    items = completion.items if isinstance(completion, types.CompletionList) else completion
    topic = [i for i in items or [] if i.label == "topic"]
    assert topic, [i.label for i in items or []]

    hover = await client.text_document_hover_async(
        types.HoverParams(doc(uri), client.position_of(uri, "{{ topic", offset=4))
    )
    assert "what the summary is about" in hover.contents.value

    definition = await client.text_document_definition_async(
        types.DefinitionParams(doc(uri), client.position_of(uri, "{{ topic", offset=4))
    )
    locations = definition if isinstance(definition, list) else [definition]
    assert [_target(loc).start.line for loc in locations if _target_uri(loc) == uri] == [
        client.position_of(uri, "topic?").line
    ]

    references = await client.text_document_references_async(
        types.ReferenceParams(
            text_document=doc(uri),
            position=client.position_of(uri, "{{ topic", offset=4),
            context=types.ReferenceContext(include_declaration=True),
        )
    )
    in_prompt = sorted(r.range.start.line for r in references or [] if r.uri == uri)
    text = client.texts[uri]
    expected_lines = sorted(
        n
        for n, line in enumerate(text.split("\n"))
        if "topic" in line and "topic: weather" not in line
    )
    assert in_prompt == expected_lines

    rename = await client.text_document_rename_async(
        types.RenameParams(
            text_document=doc(uri),
            position=client.position_of(uri, "{{ topic", offset=4),
            new_name="subject",
        )
    )
    renamed = client.apply(rename)[uri]
    assert "topic" not in renamed.replace("topic: weather", "")
    assert "subject?: string, what the summary is about" in renamed

    folding = await client.text_document_folding_range_async(types.FoldingRangeParams(doc(uri)))
    loop_line = client.position_of(uri, "{% for").line
    assert any(f.start_line == loop_line for f in folding or [])

    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(doc(uri)))
    assert "topic" in _symbol_names(symbols or [])

    lenses = await client.text_document_code_lens_async(types.CodeLensParams(doc(uri)))
    titles = [lens.command.title for lens in lenses or [] if lens.command]
    assert any(t.startswith("▶ Evaluate (2 examples") for t in titles), titles

    tokens = await client.text_document_semantic_tokens_full_async(
        types.SemanticTokensParams(doc(uri))
    )
    assert _token_lines(tokens.data) >= {loop_line, loop_line + 1}

    hints = await client.text_document_inlay_hint_async(
        types.InlayHintParams(
            text_document=doc(uri),
            range=types.Range(types.Position(0, 0), types.Position(len(text.split("\n")), 0)),
        )
    )
    assert all(h.position.line < len(text.split("\n")) for h in hints or [])

    # the diagnostics, still debounced, arrive for the final version
    diagnostics = await client.wait_for_diagnostics(uri, client.versions[uri])
    assert not [d for d in diagnostics if d.code == "undefined-variable"]


def _symbol_names(symbols) -> set[str]:
    names: set[str] = set()
    for symbol in symbols:
        names.add(symbol.name)
        names |= _symbol_names(getattr(symbol, "children", None) or [])
    return names


def _token_lines(data: list[int]) -> set[int]:
    lines, line = set(), 0
    for index in range(0, len(data), 5):
        line += data[index]
        lines.add(line)
    return lines


def _target(location: types.Location | types.LocationLink) -> types.Range:
    return location.target_range if isinstance(location, types.LocationLink) else location.range


def _target_uri(location: types.Location | types.LocationLink) -> str:
    return location.target_uri if isinstance(location, types.LocationLink) else location.uri
