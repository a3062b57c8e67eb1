"""Evaluate in the editor, end to end over stdio: code lenses, progress, scores and deltas,
comparison on hover, undo restoring a score from history, cancellation and failures.

The model calls go through litellm for real, answered by litellm's own `mock_response` (set in
the prompt's `config`), so the numbers are known in advance: the reply is always the same word,
and exact_match is the share of examples that expect that word."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from lsp_helpers import TIMEOUT, EditorClient, editor_client
from lsprotocol import types

pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

client = editor_client(("neovim@v0.10.0", "visual_studio_code@v1.65.2"))

EXAMPLES = "\n".join(
    [
        '{"id": "a", "input": {"review": "Loved it"}, "expected": "positive"}',
        '{"id": "b", "input": {"review": "Great value"}, "expected": "positive"}',
        '{"id": "c", "input": {"review": "Broke in a day"}, "expected": "negative"}',
        '{"id": "d", "input": {"review": "Works fine"}, "expected": "positive"}',
    ]
)


def prompt(reply: str, delay: float = 0.01, instruction: str = "Classify the review.") -> str:
    return f"""\
---
name: sentiment
model: openai/gpt-4o-mini
config:
  mock_response: {reply}
  mock_delay: {delay}
input:
  schema:
    review: string, the review to classify
examples: reviews.examples.jsonl
metrics:
  - exact_match
eval:
  concurrency: 1
---
user:
{instruction}
{{{{ review }}}}
"""


async def lenses(client: EditorClient, uri: str) -> list[str]:
    result = await client.text_document_code_lens_async(
        types.CodeLensParams(types.TextDocumentIdentifier(uri))
    )
    return [lens.command.title for lens in result or [] if lens.command]


async def execute(client: EditorClient, command: str, **argument: str) -> None:
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=[argument])
    )


async def wait_until(predicate, timeout: float = TIMEOUT) -> None:
    async def poll() -> None:
        while not await predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def evaluate(client: EditorClient, uri: str) -> str:
    """Run Evaluate and return the score lens once the run is over."""
    before = set(client.progress_reports)
    await execute(client, "prompt-lsp.evaluate", uri=uri)

    async def ended() -> bool:
        new = [t for t in client.progress_reports if t not in before]
        return bool(new) and isinstance(
            client.progress_reports[new[-1]][-1], types.WorkDoneProgressEnd
        )

    await wait_until(ended)
    titles = await lenses(client, uri)
    return titles[0]


def runs_in_history(root: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(root / ".prompt-lsp" / "history.sqlite3") as db:
        return list(db.execute("SELECT status, version FROM runs ORDER BY started_at"))


async def test_lens_before_any_run(client: EditorClient) -> None:
    client.write("reviews.examples.jsonl", EXAMPLES)
    uri = await client.open("sentiment.prompt", prompt("positive"))
    assert await lenses(client, uri) == [
        "▶ Evaluate (4 examples · openai/gpt-4o-mini)",
        "Show rendered prompt",
        "✦ Optimize",
    ]
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(0, 1))
    )
    assert "Not evaluated yet" in hover.contents.value


async def test_evaluate_edit_compare_undo(client: EditorClient) -> None:
    client.write("reviews.examples.jsonl", EXAMPLES)
    first_text = prompt("positive")
    uri = await client.open("sentiment.prompt", first_text)

    # first run: 3 of 4 examples expect "positive"
    title = await evaluate(client, uri)
    assert title.startswith("exact_match 0.750 (first run) · 4/4 ok · ")
    token = list(client.progress_reports)[-1]
    reports = client.progress_reports[token]
    assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].cancellable
    messages = [r.message for r in reports if isinstance(r, types.WorkDoneProgressReport)]
    # one report as the run starts, then one per finished example
    assert [m.split(" ")[0] for m in messages] == ["0/4", "1/4", "2/4", "3/4", "4/4"]

    # edit: the reply changes, so the score moves by exactly -0.5; but 4 examples (3 down, 1
    # up) cannot tell that from noise: the paired interval includes 0, so ≈ rather than ▼
    second_text = prompt("negative", instruction="Classify the review in one word.")
    await client.change(uri, second_text)
    stale = (await lenses(client, uri))[0]
    assert stale.startswith("exact_match 0.750 (first run)") and stale.endswith("(edited since)")
    title = await evaluate(client, uri)
    assert title.startswith("exact_match 0.250 ≈−0.500 · 4/4 ok · ")

    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(0, 1))
    )
    text = hover.contents.value
    # the interval reaches the lowest possible mean, −1, and crosses 0; decided by 4 examples
    assert "| exact_match | 0.750 | 0.250 | ≈−0.500 | −0.500 [−1.000, +0." in text
    assert text.count("| 4 |") == 1
    # sign flips of (−1, −1, +1, −1): 10 of the 16 have |sum| ≥ 2
    assert "within noise" in text and "p = 0.625" in text
    assert "needs ≈" in text
    assert "1 examples improved, 3 regressed." in text
    assert "+Classify the review in one word." in text and "-Classify the review." in text

    # the examples file shows each example's score and its move
    examples_doc = await client.open("reviews.examples.jsonl", wait=False)
    result = await client.text_document_code_lens_async(
        types.CodeLensParams(types.TextDocumentIdentifier(examples_doc))
    )
    by_line = {lens.range.start.line: lens.command.title for lens in result}
    assert by_line == {
        0: "exact_match 0.000 ▼1.000",
        1: "exact_match 0.000 ▼1.000",
        2: "exact_match 1.000 ▲1.000",
        3: "exact_match 0.000 ▼1.000",
    }

    # regressed examples get information diagnostics on their lines of the examples file
    examples_uri = client.path("reviews.examples.jsonl").as_uri()
    regressed = client.diagnostics.get(examples_uri, [])
    assert sorted(d.range.start.line for d in regressed) == [0, 1, 3]
    assert all(d.severity == types.DiagnosticSeverity.Information for d in regressed)

    # undo: the first text's score is back at once, from history, with no new run; its
    # previous version is now the latest other one evaluated, the second text
    runs_before = runs_in_history(client.root)
    await client.change(uri, first_text)
    assert (await lenses(client, uri))[0].startswith("exact_match 0.750 ≈+0.500 · 4/4 ok")
    assert runs_in_history(client.root) == runs_before

    # compare opens a document with the table and the diff
    await execute(client, "prompt-lsp.compareWithPrevious", uri=uri)
    await client.change(uri, second_text)
    await execute(client, "prompt-lsp.compareWithPrevious", uri=uri)
    shown = client.shown_documents[-1].uri
    assert shown.endswith("sentiment.compare.md")
    assert "| exact_match | 0.750 | 0.250 | ≈−0.500 |" in Path(shown[len("file://") :]).read_text()


async def test_cancel_keeps_finished_examples(client: EditorClient) -> None:
    client.write("reviews.examples.jsonl", EXAMPLES)
    uri = await client.open("sentiment.prompt", prompt("positive", delay=0.6))
    await execute(client, "prompt-lsp.evaluate", uri=uri)

    async def one_done() -> bool:
        titles = await lenses(client, uri)
        return bool(titles) and titles[0].startswith("Evaluating 1/4")

    await wait_until(one_done)
    assert (await lenses(client, uri))[1] == "Cancel"
    await execute(client, "prompt-lsp.cancelEvaluation", uri=uri)

    async def stopped() -> bool:
        return "cancelled at" in (await lenses(client, uri))[0]

    await wait_until(stopped)
    title = (await lenses(client, uri))[0]
    assert "(edited since)" not in title
    finished = int(title.split("cancelled at ")[1].split("/")[0])
    assert 1 <= finished < 4
    assert [status for status, _ in runs_in_history(client.root)] == ["cancelled"]
    with sqlite3.connect(client.root / ".prompt-lsp" / "history.sqlite3") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM results").fetchone()
    assert count == finished


async def test_failing_provider_gives_diagnostics_not_a_crash(client: EditorClient) -> None:
    client.write("reviews.examples.jsonl", EXAMPLES)
    uri = await client.open("sentiment.prompt", prompt("litellm.ContextWindowExceededError"))
    title = await evaluate(client, uri)
    assert "0/4 ok" in title
    failures = [d for d in client.diagnostics[uri] if d.code == "evaluation"]
    assert len(failures) == 4 and all("failed" in d.message for d in failures)
    # the server still serves
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), client.position_of(uri, "review }}"))
    )
    assert "the review to classify" in hover.contents.value


async def test_show_rendered_and_run_example(client: EditorClient) -> None:
    client.write("reviews.examples.jsonl", EXAMPLES)
    uri = await client.open("sentiment.prompt", prompt("positive"))
    await execute(client, "prompt-lsp.showRendered", uri=uri)
    rendered = Path(client.shown_documents[-1].uri[len("file://") :])
    assert rendered.name == "sentiment.rendered.md"
    assert "Classify the review.\nLoved it" in rendered.read_text()

    await execute(client, "prompt-lsp.runExample", uri=uri, example="c")
    output = Path(client.shown_documents[-1].uri[len("file://") :])
    assert output.name == "sentiment.c.md"
    text = output.read_text()
    assert "positive" in text and "negative" in text and "exact_match: 0.000" in text
    # one example is not a score of the version: nothing recorded
    assert (
        not (client.root / ".prompt-lsp" / "history.sqlite3").exists()
        or runs_in_history(client.root) == []
    )


async def test_runs_recorded_elsewhere_show_up(client: EditorClient) -> None:
    """A run from the terminal (or another editor) appears at the next lens request, and keeps
    showing, marked edited, after the text changes."""
    client.write("reviews.examples.jsonl", EXAMPLES)
    text = prompt("positive")
    uri = await client.open("sentiment.prompt", text)
    assert (await lenses(client, uri))[0].startswith("▶ Evaluate")
    result = subprocess.run(
        [sys.executable, "-m", "prompt_lsp", "eval", "sentiment.prompt"],
        cwd=client.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (await lenses(client, uri))[0].startswith("exact_match 0.750 (first run) · 4/4 ok")
    await client.change(uri, text.replace("Classify", "Label"))
    title = (await lenses(client, uri))[0]
    assert title.startswith("exact_match 0.750 (first run)") and title.endswith("(edited since)")


async def test_hostile_names_and_paths_never_write_outside_the_state_folder(
    client: EditorClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    hostile_id = f"/../../../../{outside}/x"
    client.write(
        "reviews.examples.jsonl",
        f'{{"id": "{hostile_id}", "input": {{"review": "Loved it"}}, "expected": "positive"}}\n',
    )
    uri = await client.open("sentiment.prompt", prompt("positive"))
    await execute(client, "prompt-lsp.runExample", uri=uri, example=hostile_id)
    output = Path(client.shown_documents[-1].uri[len("file://") :])
    assert output.parent == client.root / ".prompt-lsp" / "out"
    assert "positive" in output.read_text()
    assert list(outside.iterdir()) == []

    # createExamplesFile writes only the file the open prompt names, never one the client says
    target = outside / "planted.jsonl"
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            "prompt-lsp.createExamplesFile",
            [{"uri": uri, "path": str(target), "content": "{}\n"}],
        )
    )
    assert not target.exists()
    assert any("can be created" in m.message for m in client.messages)
