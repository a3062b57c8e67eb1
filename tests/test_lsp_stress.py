"""The server under stress, end to end over stdio: a failing handler, huge, binary and
pathological files, a burst of edits with requests in flight, and the import budget of the
editing path (litellm takes seconds to import: nothing on it may load it)."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsp_helpers import TIMEOUT, EditorClient, apply_text_edits, editor_client, uri_of
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig

pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

nvim = editor_client(("neovim@v0.11.0",))  # utf-8 positions
vscode = editor_client(("visual_studio_code@v1.65.2",))  # utf-16 positions

SCHEMA = "---\ninput:\n  schema:\n    topic: string, what it is about\n---\n"
BIG_TIMEOUT = 60.0  # a 10 MB document crosses the pipe as JSON, twice on a change


def ident(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri)


def errors_logged(client: EditorClient) -> list[str]:
    return [m.message for m in client.log_messages if m.type == types.MessageType.Error]


async def hover(client: EditorClient, uri: str, pos: types.Position) -> types.Hover | None:
    return await asyncio.wait_for(
        client.text_document_hover_async(types.HoverParams(ident(uri), pos)), TIMEOUT
    )


async def complete(
    client: EditorClient, uri: str, pos: types.Position
) -> types.CompletionList | None:
    result = await asyncio.wait_for(
        client.text_document_completion_async(types.CompletionParams(ident(uri), pos)), TIMEOUT
    )
    assert result is None or isinstance(result, types.CompletionList)
    return result


def last_position(text: str, encoding: str) -> types.Position:
    lines = text.split("\n")
    last = lines[-1]
    units = (
        len(last.encode("utf-8"))
        if encoding == types.PositionEncodingKind.Utf8
        else len(last.encode("utf-16-le")) // 2
    )
    return types.Position(len(lines) - 1, units)


def send_insert(client: EditorClient, uri: str, pos: types.Position, text: str) -> int:
    """Insert `text` at `pos` with an incremental change; returns the new version."""
    version = client.versions[uri] + 1
    client.versions[uri] = version
    client.texts[uri] = apply_text_edits(
        client.texts[uri], [types.TextEdit(types.Range(pos, pos), text)], client.encoding
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(pos, pos), text=text)
            ],
        )
    )
    return version


async def still_serving(client: EditorClient) -> None:
    """A fresh document is checked and a hover answered: the server is alive and well."""
    uri = await client.open("alive.prompt", SCHEMA + "About {{ topic }} and {{ other }}.\n")
    assert [d.code for d in client.diagnostics[uri] if d.code == "undefined-variable"] == [
        "undefined-variable"
    ]
    found = await hover(client, uri, client.position_of(uri, "{{ topic", offset=4))
    assert found is not None and "what it is about" in found.contents.value


# ---------------------------------------------------------------- failures


async def test_a_failing_handler_logs_the_error_and_answers_empty(nvim: EditorClient):
    front = SCHEMA.replace("\n---\n", "\nexamples: blocker/cases.jsonl\n---\n", 1)
    uri = await nvim.open("news.prompt", front + "{{ topic }}\n")
    nvim.write("blocker", "a file where a folder would have to be\n")
    # the examples file cannot be created inside a regular file: the command fails
    result = await asyncio.wait_for(
        nvim.workspace_execute_command_async(
            types.ExecuteCommandParams(
                "prompt-lsp.createExamplesFile",
                [{"uri": uri, "path": str(nvim.path("blocker/cases.jsonl")), "content": "{}\n"}],
            )
        ),
        TIMEOUT,
    )
    assert result is None

    async def logged() -> str:
        while not errors_logged(nvim):
            await asyncio.sleep(0.02)
        return errors_logged(nvim)[0]

    message = await asyncio.wait_for(logged(), TIMEOUT)
    assert message.startswith("create_examples_file failed:")
    assert "Traceback" in message and "Error" in message
    # wrong arguments are the client's mistake: an error answer, and the server carries on
    with pytest.raises(JsonRpcException):
        await asyncio.wait_for(
            nvim.workspace_execute_command_async(
                types.ExecuteCommandParams("prompt-lsp.createExamplesFile", [{"nonsense": 1}])
            ),
            TIMEOUT,
        )
    # requests about documents the server does not have are answered, not failed
    unknown = uri_of(nvim.path("never-opened.prompt"))
    assert await hover(nvim, unknown, types.Position(0, 0)) is None
    assert await complete(nvim, unknown, types.Position(3, 7)) is None
    await still_serving(nvim)
    assert len(errors_logged(nvim)) == 1


# ---------------------------------------------------------------- large and odd files


def ten_megabytes() -> str:
    line = "Line {}: some prose about {{{{ topic }}}} and the weather, café ☕, more words.\n"
    lines = [SCHEMA, "user:\n"]
    size = 0
    number = 0
    while size < 10_000_000:
        text = line.format(number)
        lines.append(text)
        size += len(text)
        number += 1
    return "".join(lines)


async def test_a_10_mb_file_is_skipped_with_a_reason(nvim: EditorClient):
    text = ten_megabytes()
    started = time.monotonic()
    uri = await nvim.open("huge.prompt", text, wait=False)
    diagnostics = await nvim.wait_for_diagnostics(uri, 1, timeout=BIG_TIMEOUT)
    opened = time.monotonic() - started
    too_large = [d for d in diagnostics if d.code == "too-large"]
    assert len(too_large) == 1, [(d.code, d.message) for d in diagnostics]
    assert too_large[0].severity == types.DiagnosticSeverity.Information
    assert "too large" in too_large[0].message and "skipped" in too_large[0].message
    assert too_large[0].source == "prompt-lsp"

    # requests stay quick: the work is bounded
    started = time.monotonic()
    end = last_position(text, nvim.encoding)
    await complete(nvim, uri, end)
    found = await hover(nvim, uri, nvim.position_of(uri, "{{ topic", offset=4))
    assert found is None or isinstance(found.contents, types.MarkupContent)
    assert time.monotonic() - started < max(5.0, opened)

    # an incremental change near the end is applied and checked
    version = send_insert(nvim, uri, types.Position(end.line - 1, 0), "{{ more }}")
    diagnostics = await nvim.wait_for_diagnostics(uri, version, timeout=BIG_TIMEOUT)
    assert "too-large" in {d.code for d in diagnostics}
    nvim.close(uri)
    await still_serving(nvim)
    assert not errors_logged(nvim)


async def test_a_long_non_ascii_line(vscode: EditorClient):
    text = "---\n---\n" + "café ☕ 𝄞 {{ topic }} " * 200_000 + "{{ to"
    uri = await vscode.open("line.prompt", text, wait=False)
    diagnostics = await vscode.wait_for_diagnostics(uri, 1, timeout=BIG_TIMEOUT)
    assert "too-large" in {d.code for d in diagnostics}
    end = last_position(text, vscode.encoding)
    started = time.monotonic()
    result = await complete(vscode, uri, end)
    assert time.monotonic() - started < 5.0
    for item in result.items if result else []:
        assert isinstance(item.text_edit, types.TextEdit)
        assert item.text_edit.range.end == end
        assert item.text_edit.range.start == types.Position(end.line, end.character - 2)
    assert not errors_logged(vscode)


async def test_a_binary_file(vscode: EditorClient):
    rng = random.Random(20240611)
    text = bytes(rng.randrange(256) for _ in range(300_000)).decode("latin-1")
    uri = await vscode.open("blob.prompt", text, wait=False)
    diagnostics = await vscode.wait_for_diagnostics(uri, 1)
    assert all(d.source == "prompt-lsp" for d in diagnostics)
    lines = text.split("\n")
    for _ in range(20):
        line = rng.randrange(len(lines))
        pos = types.Position(line, rng.randrange(len(lines[line]) + 1))
        await hover(vscode, uri, pos)
        await complete(vscode, uri, pos)
    # something that looks like a prompt with binary bytes in its front matter and body
    blob = "---\nmodel: \x00\x01\xff\nname: \ufffd\ufffd\n---\n{{ \x00 }}\x85{% \x0c %}<|\x00|>\n"
    other = await vscode.open("blob2.prompt", blob)
    await hover(vscode, other, types.Position(4, 3))
    await complete(vscode, other, types.Position(4, 3))
    assert not errors_logged(vscode)
    await still_serving(vscode)


def open_unsaved(client: EditorClient, name: str, text: str) -> str:
    """didOpen without writing the file (text that cannot be saved as UTF-8)."""
    uri = uri_of(client.path(name))
    client.texts[uri], client.versions[uri] = text, 1
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "prompt", 1, text))
    )
    return uri


async def test_a_lone_surrogate_does_not_stop_the_server(vscode: EditorClient):
    # JSON can carry "\ud800" (an editor's UTF-16 string may hold half a pair)
    uri = open_unsaved(vscode, "half.prompt", SCHEMA + "\ud800 {{ other }}\n")

    async def published_or_logged() -> None:
        while uri not in vscode.published and not errors_logged(vscode):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(published_or_logged(), TIMEOUT)
    await hover(vscode, uri, types.Position(5, 5))
    await complete(vscode, uri, types.Position(5, 5))
    await still_serving(vscode)


async def test_a_lone_surrogate_before_a_diagnostic(vscode: EditorClient):
    uri = open_unsaved(vscode, "half.prompt", SCHEMA + "\ud800 {{ other }}\n")
    diagnostics = await vscode.wait_for_diagnostics(uri, 1, timeout=5.0)
    (undefined,) = [d for d in diagnostics if d.code == "undefined-variable"]
    assert undefined.range.start == types.Position(5, 5)  # the half pair is one utf-16 unit


PATHOLOGICAL = {
    "braces": "{{" * 50_000,
    "braces-spaced": "{{ " * 50_000,
    "braces-lines": "{{\n" * 50_000,
    "tags": "{%" * 50_000,
    "nested-ifs": "{% if x %}" * 5_000,
    "parentheses": "{{ " + "(" * 20_000,
    "comments": "{#" * 50_000,
}


async def test_pathological_templates_are_bounded(nvim: EditorClient):
    started = time.monotonic()
    for name, body in PATHOLOGICAL.items():
        text = SCHEMA + body
        uri = await nvim.open(f"{name}.prompt", text, wait=False)
        diagnostics = await nvim.wait_for_diagnostics(uri, 1)
        assert diagnostics, name
        end = last_position(text, nvim.encoding)
        await complete(nvim, uri, end)
        await hover(nvim, uri, types.Position(5, 2))
        nvim.close(uri)
    assert time.monotonic() - started < 30.0
    assert not errors_logged(nvim)
    await still_serving(nvim)


async def test_a_burst_of_edits_with_requests_in_flight(nvim: EditorClient):
    text = SCHEMA + "user:\nAbout {{ topic }}.\n"
    uri = await nvim.open("burst.prompt", text)
    line = 6
    typed = "Now {{ topic | upper }} and {{ missing }} é☕ "
    requests = []
    for index, char in enumerate(typed * 3):
        pos = types.Position(line, len((typed * 3)[:index].encode("utf-8")))
        send_insert(nvim, uri, pos, char)
        after = types.Position(line, pos.character + len(char.encode("utf-8")))
        requests.append(
            nvim.text_document_completion_async(types.CompletionParams(ident(uri), after))
        )
        if index % 5 == 0:
            requests.append(nvim.text_document_hover_async(types.HoverParams(ident(uri), after)))
    await asyncio.wait_for(asyncio.gather(*requests), TIMEOUT)
    diagnostics = await nvim.wait_for_diagnostics(uri, nvim.versions[uri])
    missing = [d for d in diagnostics if d.code == "undefined-variable"]
    assert [d.range for d in missing] == [nvim.range_of(uri, "missing", nth=n) for n in range(3)]
    versions = [p.version for p in nvim.published[uri]]
    assert versions == sorted(versions)
    assert len(versions) < 10  # debounced, not one check per keystroke
    assert not errors_logged(nvim)


# ---------------------------------------------------------------- import budget

# The real server with one extra command that tells which top-level modules are loaded.
IMPORTS_SERVER = """
import sys
from prompt_lsp.server import create_server

ls = create_server()


@ls.command("test.loadedModules")
def loaded_modules(ls, *args):
    return sorted({name.split(".")[0] for name in sys.modules})


ls.start_io()
"""


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-c", IMPORTS_SERVER], client_factory=EditorClient.create
    )
)
async def modules_client(lsp_client: EditorClient, tmp_path: Path):
    (tmp_path / ".git").mkdir()
    await lsp_client.start_session("neovim@v0.11.0", tmp_path)
    yield
    await asyncio.wait_for(lsp_client.shutdown_session(), TIMEOUT)


async def test_editing_does_not_import_litellm(modules_client: EditorClient):
    client = modules_client
    client.write("news.examples.jsonl", '{"input": {"topic": "rain"}, "expected": "wet"}\n')
    uri = await client.open(
        "news.prompt",
        "---\nmodel: openai/gpt-4o-mini\nexamples: news.examples.jsonl\n"
        "input:\n  schema:\n    topic: string\n---\nuser:\nAbout {{ topic }} <|im_start|>\n",
    )
    await complete(client, uri, client.position_of(uri, "{{ topic", offset=3))
    await complete(client, uri, client.position_of(uri, "openai/", offset=7))
    await hover(client, uri, client.position_of(uri, "{{ topic", offset=4))
    await hover(client, uri, client.position_of(uri, "openai/", offset=7))
    await client.change(uri, client.texts[uri] + "{{ topic | upper }}\n")
    await asyncio.sleep(0.5)  # background work after initialize has had its chance
    modules = await asyncio.wait_for(
        client.workspace_execute_command_async(types.ExecuteCommandParams("test.loadedModules")),
        TIMEOUT,
    )
    assert "prompt_lsp" in modules and "pygls" in modules
    assert "litellm" not in modules
    assert "openai" not in modules
