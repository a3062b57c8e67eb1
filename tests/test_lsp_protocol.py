"""The server always answers: malformed messages, oversized ones, requests outside the
lifecycle, and didChange ranges out of range or reversed (issue 10), against the real server
over stdio (`raw_lsp.RawServer`)."""

from __future__ import annotations

import json
import random
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from raw_lsp import RawServer

INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, NOT_INITIALIZED = -32602, -32600, -32601, -32002
PROMPT = "---\nmodel: openai/gpt-4o-mini\n---\nuser:\nHello {{ name }}\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RawServer]:
    raw = RawServer(cwd=tmp_path)
    yield raw
    raw.close()


def open_prompt(
    server: RawServer, tmp_path: Path, text: str = PROMPT, name: str = "a.prompt"
) -> str:
    uri = (tmp_path / name).as_uri()
    server.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "prompt", "version": 1, "text": text}},
    )
    return uri


def hover(
    server: RawServer, uri: str, line: int = 4, character: int = 10, timeout: float = 10.0
) -> dict[str, Any]:
    return server.request(
        "textDocument/hover",
        {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
        timeout=timeout,
    )


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


# ---------------------------------------------------------------- oversized messages


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for the server's memory")
def test_an_oversized_message_is_refused_and_the_session_goes_on(server: RawServer, tmp_path: Path):
    server.initialize(tmp_path)
    uri = open_prompt(server, tmp_path)
    assert "result" in hover(server, uri)
    # a header claiming a terabyte, then a little of a body, then the next real message
    server.send_bytes(
        b'Content-Length: 1000000000000\r\n\r\n{"jsonrpc": "2.0", "id": 99, "method": "x"'
    )
    answer = hover(server, uri)
    assert "result" in answer and "value" in json.dumps(answer["result"])
    assert rss_mb(server.process.pid) < 400
    # a body of 65 MiB is refused too, even when it is all sent
    server.send_bytes(b"Content-Length: %d\r\n\r\n" % (65 << 20) + b" " * (65 << 20))
    assert "result" in hover(server, uri, timeout=30.0)
    assert rss_mb(server.process.pid) < 400
    assert any("Refused a message of 1,000,000,000,000 bytes" in line for line in server.stderr)
    # a header with more digits than Python turns into an int
    server.send_bytes(b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n")
    assert "result" in hover(server, uri)


def test_junk_between_messages_never_ends_the_session(server: RawServer, tmp_path: Path):
    server.initialize(tmp_path)
    uri = open_prompt(server, tmp_path)
    for junk in (
        b"{not json",
        b"null",
        b"[1, 2]",
        b'"text"',
        b"{}",
        b'{"jsonrpc": "2.0"}',
        b"[" * 100_000,
    ):
        server.send(junk)
        assert "result" in hover(server, uri), junk[:20]
    assert server.process.poll() is None


# ---------------------------------------------------------------- malformed params

HOVER_POSITION = {"line": 4, "character": 8}

# Each of these got no answer at all before (the client waited forever).
MALFORMED: list[tuple[str, Any]] = [
    ("textDocument/hover", None),  # no params
    ("textDocument/hover", []),
    ("textDocument/hover", {"textDocument": "a.prompt", "position": HOVER_POSITION}),
    (
        "textDocument/hover",
        {"textDocument": {"uri": "URI"}, "position": {"line": -1, "character": 0}},
    ),
    ("textDocument/hover", {"textDocument": {"uri": "URI"}}),
    (
        "textDocument/completion",
        {"textDocument": {"uri": "URI"}, "position": {"line": "x", "character": 0}},
    ),
    (
        "textDocument/completion",
        {
            "textDocument": {"uri": "URI"},
            "position": HOVER_POSITION,
            "context": {"triggerKind": 99},
        },
    ),
    ("textDocument/documentSymbol", {"textDocument": None}),
    ("textDocument/semanticTokens/full", {}),
    ("textDocument/codeLens", {"textDocument": {}}),
    (
        "textDocument/inlayHint",
        {"textDocument": {"uri": "URI"}, "range": {"start": HOVER_POSITION}},
    ),
    ("textDocument/definition", {"textDocument": {"uri": "URI"}, "position": [4, 8]}),
    (
        "textDocument/rename",
        {"textDocument": {"uri": "URI"}, "position": HOVER_POSITION, "newName": 7},
    ),
    ("workspace/executeCommand", {"command": 5}),
    ("workspace/executeCommand", {"command": "prompt-lsp.showRendered", "arguments": 3}),
]


def test_malformed_params_are_answered_with_invalid_params(server: RawServer, tmp_path: Path):
    server.initialize(tmp_path)
    uri = open_prompt(server, tmp_path)
    codes = []
    for method, params in MALFORMED:
        params = json.loads(json.dumps(params).replace('"URI"', json.dumps(uri)))
        answer = server.request(method, params, timeout=5.0)
        assert "error" in answer, (method, params, answer)
        codes.append(answer["error"]["code"])
    assert codes == [INVALID_PARAMS] * len(MALFORMED)
    assert "result" in hover(server, uri)  # and the session goes on


def test_envelope_errors_are_answered(server: RawServer, tmp_path: Path):
    server.initialize(tmp_path)
    uri = open_prompt(server, tmp_path)
    answer = server.request(
        "textDocument/hover",
        {"textDocument": {"uri": uri}, "position": HOVER_POSITION},
        jsonrpc="1.0",
    )
    assert answer["error"]["code"] == INVALID_REQUEST
    # a notification's method sent as a request (with an id): pygls dropped the id
    answer = server.request("textDocument/didSave", {"textDocument": {"uri": uri}})
    assert answer["error"]["code"] == INVALID_REQUEST
    assert server.request("no/suchMethod", {})["error"]["code"] == METHOD_NOT_FOUND
    server.send({"jsonrpc": "2.0", "id": [1], "method": "textDocument/hover", "params": {}})
    assert "result" in hover(server, uri)


# ---------------------------------------------------------------- the lifecycle


def test_requests_before_initialize_get_server_not_initialized(server: RawServer, tmp_path: Path):
    uri = (tmp_path / "a.prompt").as_uri()
    assert hover(server, uri)["error"]["code"] == NOT_INITIALIZED
    # malformed params before initialize: still "not initialized", still answered
    assert server.request("textDocument/hover", [])["error"]["code"] == NOT_INITIALIZED
    # shutdown before initialize is refused too, and does not end the session
    assert server.request("shutdown")["error"]["code"] == NOT_INITIALIZED
    open_prompt(server, tmp_path)  # a notification before initialize: dropped
    answer = server.initialize(tmp_path)
    assert "capabilities" in answer["result"]
    assert hover(server, uri)["result"] is None  # the early didOpen was dropped
    open_prompt(server, tmp_path)
    assert "value" in json.dumps(hover(server, uri)["result"])
    # initialize is sent once: a second one would reset the workspace
    again = server.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    assert again["error"]["code"] == INVALID_REQUEST
    assert "value" in json.dumps(hover(server, uri)["result"])


def test_requests_after_shutdown_are_invalid_and_exit_ends_cleanly(tmp_path: Path):
    raw = RawServer(cwd=tmp_path)
    try:
        raw.initialize(tmp_path)
        uri = open_prompt(raw, tmp_path)
        assert raw.request("shutdown") == {"jsonrpc": "2.0", "id": raw._next_id, "result": None}
        assert hover(raw, uri)["error"]["code"] == INVALID_REQUEST
        assert raw.request("shutdown")["error"]["code"] == INVALID_REQUEST
        raw.notify("exit")
        assert raw.process.wait(10) == 0
    finally:
        raw.close()


# ---------------------------------------------------------------- edits, fuzzed

# The same document text the server holds, through a test-only command.
TEXT_SERVER = """
import sys
from prompt_lsp.server import create_server
from prompt_lsp.server.protocol import BoundedInput

ls = create_server()


@ls.command("test.documentText")
def document_text(ls, uri: str):
    return ls.workspace.get_text_document(uri).source


@ls.command("test.trackedFutures")
def tracked_futures(ls, *args):
    return len(ls.protocol._request_futures)


ls.start_io(stdin=BoundedInput(sys.stdin.buffer))
"""

LINE_BREAK = re.compile(r"\r\n|\r|\n")
PIECES = [
    "a",
    "bc",
    " ",
    "{{ x }}",
    "\n",
    "\r\n",
    "\r",
    "é",
    "😀",
    "\u2028",
    "\x0c",
    "---\n",
    "user:\n",
    "",
]


def units(text: str, encoding: str) -> int:
    return len(text.encode("utf-16-le")) // 2 if encoding == "utf-16" else len(text.encode())


def spec_lines(text: str) -> list[tuple[int, str]]:
    """(offset, content) of each line: lines end at \\r\\n, \\r or \\n only (LSP)."""
    lines, start = [], 0
    for match in LINE_BREAK.finditer(text):
        lines.append((start, text[start : match.start()]))
        start = match.end()
    lines.append((start, text[start:]))
    return lines


def spec_offset(text: str, line: int, character: int, encoding: str) -> int:
    """The LSP reference (vscode-languageserver-textdocument): past the last line is the end
    of the text; past the end of a line is the end of its content."""
    lines = spec_lines(text)
    if line >= len(lines):
        return len(text)
    start, content = lines[line]
    encoded = content.encode("utf-16-le" if encoding == "utf-16" else "utf-8")
    width = 2 if encoding == "utf-16" else 1
    prefix = encoded[: character * width]
    return start + len(prefix.decode("utf-16-le" if encoding == "utf-16" else "utf-8"))


def spec_apply(text: str, change: dict[str, Any], encoding: str) -> str:
    if "range" not in change:
        return change["text"]
    a = spec_offset(
        text, change["range"]["start"]["line"], change["range"]["start"]["character"], encoding
    )
    b = spec_offset(
        text, change["range"]["end"]["line"], change["range"]["end"]["character"], encoding
    )
    a, b = min(a, b), max(a, b)
    return text[:a] + change["text"] + text[b:]


def random_position(rng: random.Random, text: str, encoding: str) -> dict[str, int]:
    """On a character boundary; a third of them past the line's end or past the last line."""
    lines = spec_lines(text)
    line = rng.randrange(len(lines) + 2)
    content = lines[line][1] if line < len(lines) else ""
    cut = rng.randrange(len(content) + 1)
    character = units(content[:cut], encoding)
    if rng.random() < 0.33:
        character = units(content, encoding) + rng.randrange(1, 6)
    return {"line": line, "character": character}


def random_change(rng: random.Random, text: str, encoding: str) -> dict[str, Any]:
    inserted = "".join(rng.choice(PIECES) for _ in range(rng.randrange(4)))
    if rng.random() < 0.03:
        return {"text": inserted}
    start, end = random_position(rng, text, encoding), random_position(rng, text, encoding)
    return {"range": {"start": start, "end": end}, "text": inserted}  # reversed half the time


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
def test_fuzzed_edits_are_applied_as_the_spec_says_and_every_request_is_answered(
    tmp_path: Path, encoding: str
):
    rng = random.Random(f"issue-10-{encoding}")
    raw = RawServer([sys.executable, "-c", TEXT_SERVER], cwd=tmp_path)
    started = time.monotonic()
    try:
        answer = raw.initialize(tmp_path, encoding)
        assert answer["result"]["capabilities"]["positionEncoding"] == encoding
        text = "---\nmodel: openai/gpt-4o-mini\n---\nuser:\r\nHi {{ name }}\rbye 😀\n"
        uri = open_prompt(raw, tmp_path, text, name="fuzz one.prompt")  # a %20 in the URI
        assert "%20" in uri
        pending: list[int] = []
        edits = 0
        for version in range(2, 302):
            changes = []
            for _ in range(rng.randrange(1, 4)):  # each applies to the text the last one left
                changes.append(random_change(rng, text, encoding))
                text = spec_apply(text, changes[-1], encoding)
            edits += len(changes)
            raw.notify(
                "textDocument/didChange",
                {"textDocument": {"uri": uri, "version": version}, "contentChanges": changes},
            )
            if rng.random() < 0.5:
                msg_id = raw.new_id()
                method = rng.choice(
                    ["textDocument/hover", "textDocument/completion", "textDocument/definition"]
                )
                position = random_position(rng, text, encoding)
                params: Any = {"textDocument": {"uri": uri}, "position": position}
                if rng.random() < 0.15:  # malformed now and then
                    params = rng.choice(
                        [None, [], {"textDocument": {"uri": uri}}, {"position": position}]
                    )
                message = {"jsonrpc": "2.0", "id": msg_id, "method": method}
                if params is not None:
                    message["params"] = params
                raw.send(message)
                pending.append(msg_id)
            if version % 25 == 0:
                for msg_id in pending:
                    raw.wait(msg_id, timeout=20.0)  # answered: a result or an error
                pending.clear()
                seen = raw.request(
                    "workspace/executeCommand",
                    {"command": "test.documentText", "arguments": [uri]},
                    timeout=20.0,
                )["result"]
                assert seen == text, f"after {edits} edits (version {version})"
        for msg_id in pending:
            raw.wait(msg_id, timeout=20.0)
        assert edits > 500
        # pygls kept a future per notification for the life of the server
        tracked = raw.request("workspace/executeCommand", {"command": "test.trackedFutures"})
        assert tracked["result"] < 10
        assert time.monotonic() - started < 60
    finally:
        raw.close()
