"""Every feature reachable in every client, by the capabilities each declares: the run commands
as code actions for clients without code lenses (Helix, eglot), hover in the format the client
asked for and naming the action it offers, progress and the score as messages where the client
has no $/progress or no `promptLsp/score` handler. Helix's capability set is transcribed from its
client.rs (tests/clients/); the others are pytest-lsp's recordings.

Model calls go through litellm's `mock_response` (see test_lsp_evaluate.py)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from lsp_helpers import TIMEOUT, EditorClient, editor_client
from lsprotocol import types
from test_lsp_editing import structure_code_actions_properly
from test_lsp_evaluate import EXAMPLES, prompt, wait_until

pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

ROOT = Path(__file__).resolve().parent.parent


def _as_emacs_q(capabilities: types.ClientCapabilities) -> None:
    """eglot under `emacs -Q` (no markdown-mode) asks for plaintext hovers, and Emacs 28's
    eglot 1.9 shows no $/progress."""
    capabilities.text_document.hover.content_format = [types.MarkupKind.PlainText]
    capabilities.window.work_done_progress = False


helix = editor_client(("helix@v25.07",))
no_lens = editor_client(("helix@v25.07", "emacs@v29.1"))  # neither declares code lenses
eglot = editor_client(("emacs@v29.1",), tweak=_as_emacs_q)
# the VS Code extension's own initialization options
vscode = editor_client(
    ("visual_studio_code@v1.65.2",),
    initialization_options={"codeLens": True, "scoreNotification": True},
)


async def open_prompt(client: EditorClient, reply: str = "positive") -> str:
    client.write("reviews.examples.jsonl", EXAMPLES)
    return await client.open("sentiment.prompt", prompt(reply))


async def code_actions(
    client: EditorClient, uri: str, line: int = 0, only: list[str] | None = None
) -> list[types.CodeAction]:
    structure_code_actions_properly(client)
    params = types.CodeActionParams(
        types.TextDocumentIdentifier(uri),
        types.Range(types.Position(line, 0), types.Position(line, 0)),
        types.CodeActionContext(diagnostics=[], only=only),
    )
    result = await asyncio.wait_for(client.text_document_code_action_async(params), TIMEOUT)
    return [a for a in result or [] if isinstance(a, types.CodeAction)]


async def run_action(client: EditorClient, action: types.CodeAction) -> None:
    assert action.command is not None, action
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(action.command.command, action.command.arguments)
    )


async def hover_text(client: EditorClient, uri: str, line: int, character: int) -> types.Hover:
    return await asyncio.wait_for(
        client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(line, character))
        ),
        TIMEOUT,
    )


def shown(client: EditorClient) -> list[str]:
    return [m.message for m in client.messages]


# ---------------------------------------------------------------- code actions


async def test_the_run_commands_are_source_actions(no_lens: EditorClient):
    client = no_lens
    uri = await open_prompt(client)
    ours = ("Evaluate this prompt", "Compare with the previous version", "Show rendered prompt")
    titles = [a.title for a in await code_actions(client, uri)]
    assert [t for t in titles if t in ours] == list(ours), titles
    sources = await code_actions(client, uri, only=[types.CodeActionKind.Source])
    kinds = [str(a.kind) for a in sources]
    assert kinds[:3] == [
        "source.promptLsp.evaluate",
        "source.promptLsp.compare",
        "source.promptLsp.showRendered",
    ], kinds
    assert all(k.startswith("source") for k in kinds), kinds
    # eglot's prompt-evaluate asks for exactly one kind
    (evaluate,) = await code_actions(client, uri, only=["source.promptLsp.evaluate"])
    assert evaluate.title == "Evaluate this prompt"
    assert not await code_actions(client, uri, only=[types.CodeActionKind.QuickFix])


async def test_evaluate_through_a_code_action_in_helix(helix: EditorClient):
    """Helix shows $/progress but has no code lens and no score handler: progress is work-done
    progress, the score a message, and while it runs the action offered is Cancel."""
    uri = await open_prompt(helix, reply="positive")
    (evaluate,) = await code_actions(helix, uri, only=["source.promptLsp.evaluate"])
    before = set(helix.progress_reports)
    await run_action(helix, evaluate)

    async def scored() -> bool:
        return any("exact_match 0.750" in m for m in shown(helix))

    await wait_until(scored, timeout=60)
    (score,) = [m for m in shown(helix) if "exact_match" in m]
    assert score.startswith("sentiment: exact_match 0.750 (first run) · 4/4 ok")
    (token,) = [t for t in helix.progress_reports if t not in before]
    reports = helix.progress_reports[token]
    assert isinstance(reports[0], types.WorkDoneProgressBegin)
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)
    assert not any(m.startswith("Evaluating") for m in shown(helix))  # progress said it

    # the compare action now answers (nothing to compare after one run, said as a message)
    (compare,) = await code_actions(helix, uri, only=["source.promptLsp.compare"])
    await run_action(helix, compare)
    await wait_until(lambda: _async(any("Nothing to compare yet" in m for m in shown(helix))))


async def _async(value: bool) -> bool:
    return value


async def test_evaluate_through_a_code_action_without_progress_support(eglot: EditorClient):
    """eglot 1.9 (Emacs 28) declares no $/progress: the start and the score come as messages,
    and Cancel is the action offered while the run goes on."""
    eglot.write("reviews.examples.jsonl", EXAMPLES)
    uri = await eglot.open("sentiment.prompt", prompt("positive", delay=0.3))
    (evaluate,) = await code_actions(eglot, uri, only=["source.promptLsp.evaluate"])
    await run_action(eglot, evaluate)
    await wait_until(lambda: _async(any(m.startswith("Evaluating") for m in shown(eglot))), 60)
    assert "Evaluating sentiment on 4 examples (openai/gpt-4o-mini)…" in shown(eglot)
    assert eglot.progress_reports == {}
    titles = [a.title for a in await code_actions(eglot, uri)]
    assert "Cancel evaluation" in titles and "Evaluate this prompt" not in titles, titles
    await wait_until(lambda: _async(any("exact_match" in m for m in shown(eglot))), 60)
    (score,) = [m for m in shown(eglot) if "exact_match" in m]
    assert score.startswith("sentiment: exact_match 0.750 (first run) · 4/4 ok")


async def test_run_example_is_a_code_action_in_the_examples_file(helix: EditorClient):
    uri = await open_prompt(helix)
    # Helix takes dynamic file watchers: changes to examples files on disk reach the server
    await wait_until(lambda: _async(bool(helix.registrations)))
    assert types.WORKSPACE_DID_CHANGE_WATCHED_FILES in {r.method for r in helix.registrations}
    examples_uri = await helix.open("reviews.examples.jsonl", EXAMPLES)
    actions = await code_actions(helix, examples_uri, line=2)
    assert [a.title for a in actions] == ["Run example c", "Show example c rendered"]
    assert list(actions[0].command.arguments) == [{"uri": uri, "example": "c"}]
    assert not await code_actions(helix, examples_uri, line=9)  # no example on that line


# ---------------------------------------------------------------- hover and messages


async def test_hover_is_plaintext_for_eglot_and_names_its_action(eglot: EditorClient):
    uri = await open_prompt(eglot)
    variable = await hover_text(eglot, uri, *eglot_position(eglot, uri, "{{ review", 4))
    assert variable.contents.kind == types.MarkupKind.PlainText
    assert "review: string" in variable.contents.value
    assert "**" not in variable.contents.value and "`" not in variable.contents.value
    first_line = (await hover_text(eglot, uri, 0, 1)).contents.value
    assert "Run the Evaluate code action" in first_line and "above" not in first_line


def eglot_position(client: EditorClient, uri: str, needle: str, offset: int) -> tuple[int, int]:
    pos = client.position_of(uri, needle, offset=offset)
    return pos.line, pos.character


async def test_hover_is_markdown_for_helix_and_names_its_action(helix: EditorClient):
    uri = await open_prompt(helix)
    first_line = (await hover_text(helix, uri, 0, 1)).contents
    assert first_line.kind == types.MarkupKind.Markdown
    assert "Run the **Evaluate** code action" in first_line.value


async def test_vscode_gets_the_lens_hint_and_the_score_notification(vscode: EditorClient):
    scores: list[dict] = []
    vscode.feature("promptLsp/score")(lambda params: scores.append(params))
    uri = await open_prompt(vscode)
    first_line = (await hover_text(vscode, uri, 0, 1)).contents.value
    assert "Click **▶ Evaluate** above" in first_line
    await vscode.workspace_execute_command_async(
        types.ExecuteCommandParams("prompt-lsp.evaluate", [{"uri": uri}])
    )
    await wait_until(lambda: _async(bool(scores)), 60)
    assert str(_field(scores[0], "text")).startswith("exact_match 0.750 (first run)")
    assert not [m for m in shown(vscode) if "exact_match" in m]  # the status bar shows it


def _field(params: object, name: str) -> object:
    return params.get(name) if isinstance(params, dict) else getattr(params, name)


# ---------------------------------------------------------------- Helix's configuration


def test_the_readme_helix_configuration_parses_and_starts_this_server():
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads TOML")
    readme = (ROOT / "README.md").read_text()
    (snippet,) = re.findall(r"```toml\n(.*?)```", readme, re.S)
    config = tomllib.loads(snippet)
    (language,) = [entry for entry in config["language"] if entry["name"] == "prompt"]
    assert set(language["file-types"]) >= {"prompt", "prompty"}
    servers = language["language-servers"]
    server = config["language-server"][servers[0]]
    assert server["command"] == "prompt-lsp" and server["args"] == ["serve"]
