"""Documents as clients really name them, and the life of a document's state: percent-encoded
URIs (a folder with a space and a non-ASCII letter; Windows' `c%3A` drive spelling) get every
feature, and closing, reopening or editing after an evaluation leaves no stale diagnostic."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsp_helpers import SAMPLE_EXAMPLES, SAMPLE_PROMPT, EditorClient, editor_client, uri_of
from lsprotocol import types

pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

client = editor_client(("neovim@v0.10.0", "visual_studio_code@v1.65.2"))

BROKEN_LINE = "Summarize the following article in {{ sentences }} sentences."
BROKEN = SAMPLE_PROMPT.replace(BROKEN_LINE, BROKEN_LINE + " {{ topic }}")


async def open_uri(client: EditorClient, uri: str, text: str) -> list[types.Diagnostic]:
    """Open `uri` exactly as spelt (the helpers' `open` builds its own spelling)."""
    client.texts[uri], client.versions[uri] = text, 1
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "prompt", 1, text))
    )
    return await client.wait_for_diagnostics(uri, 1)


async def every_feature_answers(client: EditorClient, uri: str) -> None:
    diagnostics = client.diagnostics[uri]
    assert any(d.code == "undefined-variable" and "topic" in d.message for d in diagnostics)

    doc = types.TextDocumentIdentifier(uri)
    completion = await client.text_document_completion_async(
        types.CompletionParams(doc, client.position_of(uri, "{{ sentences", offset=3))
    )
    items = completion.items if isinstance(completion, types.CompletionList) else completion
    assert {"article", "sentences"} <= {item.label for item in items or []}

    hover = await client.text_document_hover_async(
        types.HoverParams(doc, client.position_of(uri, "{{ article", offset=4))
    )
    assert hover is not None and "the article to summarize" in hover.contents.value

    lenses = await client.text_document_code_lens_async(types.CodeLensParams(doc))
    titles = [lens.command.title for lens in lenses or [] if lens.command]
    assert any(t.startswith("▶ Evaluate (2 examples") for t in titles), titles


async def test_folder_with_a_space_and_a_non_ascii_letter(client: EditorClient) -> None:
    folder = client.root / "My Prompts é"
    client.write(folder / "news.examples.jsonl", SAMPLE_EXAMPLES)
    path = client.write(folder / "news.prompt", BROKEN)
    uri = uri_of(path)
    assert "%20" in uri  # the spelling editors send
    await open_uri(client, uri, BROKEN)
    await every_feature_answers(client, uri)


async def test_windows_style_escaped_colon(client: EditorClient) -> None:
    """VS Code on Windows writes `file:///c%3A/...`; the folder here is named `c:`."""
    folder = client.root / "c:" / "prompts"
    client.write(folder / "news.examples.jsonl", SAMPLE_EXAMPLES)
    client.write(folder / "news.prompt", BROKEN)
    uri = uri_of(client.root) + "/c%3A/prompts/news.prompt"
    await open_uri(client, uri, BROKEN)
    await every_feature_answers(client, uri)


PROMPT_WITH_FAILURES = """\
---
name: failing
model: openai/gpt-4o-mini
config:
  mock_response: litellm.ContextWindowExceededError
input:
  schema:
    review: string, the review
examples:
  - {id: a, input: {review: Loved it}, expected: positive}
  - {id: b, input: {review: Meh}, expected: negative}
metrics: [exact_match]
---
Classify: {{ review }}
"""


async def evaluated(client: EditorClient, uri: str) -> list[types.Diagnostic]:
    """Evaluate, and return the diagnostics published with the run's notes."""
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="prompt-lsp.evaluate", arguments=[{"uri": uri}])
    )
    while True:
        diagnostics = await client.wait_for_diagnostics(uri)
        if any(d.code == "evaluation" for d in diagnostics):
            return diagnostics


def evaluation_notes(diagnostics: list[types.Diagnostic]) -> list[str]:
    return [d.message for d in diagnostics if d.code == "evaluation"]


async def test_editing_after_an_evaluation_drops_its_notes(client: EditorClient) -> None:
    uri = await client.open("failing.prompt", PROMPT_WITH_FAILURES)
    notes = evaluation_notes(await evaluated(client, uri))
    assert len(notes) == 2 and all("failed" in n for n in notes)

    edited = PROMPT_WITH_FAILURES.replace("Classify:", "Classify this review:")
    version = await client.change(uri, edited)
    assert evaluation_notes(await client.wait_for_diagnostics(uri, version)) == []

    # undo: the evaluated text is back, and so are its notes
    version = await client.change(uri, PROMPT_WITH_FAILURES)
    assert len(evaluation_notes(await client.wait_for_diagnostics(uri, version))) == 2


async def test_reopening_after_an_evaluation_publishes_no_old_notes(
    client: EditorClient,
) -> None:
    uri = await client.open("failing.prompt", PROMPT_WITH_FAILURES)
    assert evaluation_notes(await evaluated(client, uri))
    client.close(uri)
    assert (await client.wait_for_diagnostics(uri)) == []  # closing clears them

    # reopened with other text (line numbers moved): only this text's own findings
    moved = PROMPT_WITH_FAILURES.replace("---\nClassify", "---\n\n\nClassify")
    Path(client.path("failing.prompt")).write_text(moved, encoding="utf-8")
    uri = await client.open("failing.prompt", moved, wait=False)
    assert evaluation_notes(await client.wait_for_diagnostics(uri)) == []
    assert client.published[uri][-1].version == 1
    version = await client.change(uri, moved + "\n")
    assert evaluation_notes(await client.wait_for_diagnostics(uri, version)) == []
