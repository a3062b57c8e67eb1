"""Optimize in the editor, end to end over stdio: the lens and the code action, work-done
progress, the report document, the Apply action as a WorkspaceEdit (undo is the editor's), the
original kept in the history, and cancel.

The server runs with a scripted model (tests/scripted_server.py) that answers right only when
the prompt shows a demonstration of the right label, so adding demonstrations must win."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import sys
from pathlib import Path
from typing import Union

from lsp_helpers import TIMEOUT, EditorClient, editor_client
from lsprotocol import types

SERVER = [sys.executable, str(Path(__file__).with_name("scripted_server.py"))]
client = editor_client(("neovim@v0.10.0", "visual_studio_code@v1.65.2"), server_command=SERVER)

LABELS = ("positive", "negative", "neutral")
EXAMPLES = "\n".join(
    json.dumps(
        {
            "id": f"r{i:02d}",
            "input": {"review": f"a {LABELS[i % 3]} review, number {i}"},
            "expected": LABELS[i % 3],
        }
    )
    for i in range(24)
)
PROMPT = """\
---
name: sentiment
description: Label the sentiment of a review
model: scripted/test-model
config:
  temperature: 0
examples: reviews.examples.jsonl
metrics:
  - exact_match
eval:
  concurrency: 2
---
system:
Label the review.
user:
Review: {{ review }}
Sentiment:
"""


async def lenses(client: EditorClient, uri: str) -> list[str]:
    result = await client.text_document_code_lens_async(
        types.CodeLensParams(types.TextDocumentIdentifier(uri))
    )
    return [lens.command.title for lens in result or [] if lens.command]


def read_code_actions_as_editors_do(client: EditorClient) -> None:
    """lsprotocol's client hook reads every object with a `command` key as a Command, so a
    CodeAction with a command (ours) would arrive as a Command; editors look at the type of
    `command` (a string only in a Command), and so does this hook."""
    converter = client.protocol._converter

    def structure(obj: dict, _: object) -> types.Command | types.CodeAction:
        kind = types.Command if isinstance(obj.get("command"), str) else types.CodeAction
        return converter.structure(obj, kind)

    converter.register_structure_hook(Union[types.Command, types.CodeAction], structure)  # noqa: UP007


async def actions(client: EditorClient, uri: str) -> list[types.CodeAction]:
    read_code_actions_as_editors_do(client)
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(uri),
            types.Range(types.Position(0, 0), types.Position(0, 0)),
            types.CodeActionContext(diagnostics=[]),
        )
    )
    return [a for a in result or [] if isinstance(a, types.CodeAction)]


async def run_command(client: EditorClient, command: types.Command) -> None:
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command.command, arguments=command.arguments)
    )


async def wait_for_end(client: EditorClient, before: set) -> list:
    async def poll() -> list:
        while True:
            new = [t for t in client.progress_reports if t not in before]
            if new and isinstance(client.progress_reports[new[-1]][-1], types.WorkDoneProgressEnd):
                return client.progress_reports[new[-1]]
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), TIMEOUT * 4)


async def test_optimize_then_apply_with_undo_and_history(client: EditorClient) -> None:
    client.write("reviews.examples.jsonl", EXAMPLES)
    uri = await client.open("sentiment.prompt", PROMPT)
    assert "✦ Optimize" in await lenses(client, uri)
    optimize = next(a for a in await actions(client, uri) if a.title.startswith("Optimize prompt"))
    assert optimize.kind == types.CodeActionKind.Source and optimize.command is not None

    before = set(client.progress_reports)
    await run_command(client, optimize.command)
    reports = await wait_for_end(client, before)
    assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].cancellable
    assert any(
        isinstance(r, types.WorkDoneProgressReport) and "calls" in (r.message or "")
        for r in reports
    )
    assert reports[-1].message.startswith("improvement: +1.000 exact_match on held-out examples")

    # the report document: leaderboard and diff
    shown = client.shown_documents[-1].uri
    assert shown.endswith("sentiment.optimize.md")
    report = Path(shown[len("file://") :]).read_text()
    assert "## Leaderboard (chosen on validation only)" in report
    assert "+Sentiment: negative" in report and "```diff" in report

    # apply: a WorkspaceEdit of the whole text, then a command that records the original
    apply = next(a for a in await actions(client, uri) if a.title.startswith("Apply optimized"))
    assert apply.title == "Apply optimized prompt (+1.00 exact_match on held-out examples)"
    assert apply.kind == types.CodeActionKind.RefactorRewrite and apply.edit is not None
    new_text = client.apply(apply.edit)[uri]
    assert "Sentiment: negative" in new_text and new_text.endswith(
        "Review: {{ review }}\nSentiment:\n"
    )
    await client.change(uri, new_text)
    assert apply.command is not None
    await run_command(client, apply.command)
    assert not [a for a in await actions(client, uri) if a.title.startswith("Apply")]
    with sqlite3.connect(client.root / ".prompt-lsp" / "history.sqlite3") as db:
        versions = [text for (text,) in db.execute("SELECT text FROM versions")]
        statuses = dict(db.execute("SELECT text, status FROM candidates"))
    assert PROMPT in versions  # the original is kept
    assert statuses[new_text] == "applied" and statuses[PROMPT] == "scored"
    assert len(statuses) > 5  # every scored candidate, each with its text
    # undo is the editor's: going back to the original text offers the winner again
    await client.change(uri, PROMPT)
    assert [a for a in await actions(client, uri) if a.title.startswith("Apply")]


async def test_cancel_keeps_the_scored_candidates(client: EditorClient) -> None:
    client.write("reviews.examples.jsonl", EXAMPLES)
    slow = PROMPT.replace("Label the review.", "Label the review slowly.")
    uri = await client.open("sentiment.prompt", slow)
    before = set(client.progress_reports)
    await run_command(
        client,
        types.Command("Optimize", "prompt-lsp.optimize", arguments=[{"uri": uri, "budget": 300}]),
    )

    async def running() -> bool:
        titles = await lenses(client, uri)
        return any(re.match(r"Optimizing… .* · [1-9]\d* candidates", t) for t in titles)

    await asyncio.wait_for(_until(running), TIMEOUT)
    assert "Cancel" in await lenses(client, uri)
    await run_command(
        client, types.Command("Cancel", "prompt-lsp.cancelOptimize", arguments=[{"uri": uri}])
    )
    reports = await wait_for_end(client, before)
    assert reports[-1].message.startswith("cancelled")
    with sqlite3.connect(client.root / ".prompt-lsp" / "history.sqlite3") as db:
        (kept,) = db.execute("SELECT COUNT(*) FROM candidates").fetchone()
    assert kept >= 1
    (token,) = [t for t in client.progress_reports if t not in before]
    assert not any("test" in (r.message or "") for r in client.progress_reports[token][1:-1])
    assert "✦ Optimize" in await lenses(client, uri)


async def _until(predicate) -> None:
    while not await predicate():
        await asyncio.sleep(0.02)
