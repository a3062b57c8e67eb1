"""Trust boundaries of issue 10: where keys go, what is stored, what a cloned repository can do.

A loopback OpenAI-compatible server (127.0.0.1 only) records the headers that reach it, so the
tests see what a host chosen by a prompt file would receive.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedProvider

from prompt_lsp.checks import check_document
from prompt_lsp.evaluation.cache import CachedReply, ResponseCache
from prompt_lsp.evaluation.runner import RetryPolicy
from prompt_lsp.evaluation.session import EvalOptions, EvalSetupError, evaluate_prompt
from prompt_lsp.format import parse
from prompt_lsp.history.paths import response_cache_path, user_cache_dir

ENV_KEY = "sk-env-key-of-the-user-0123456789"
FILE_KEY = "sk-literal-key-in-the-file-abcdefgh"
FAST = RetryPolicy(max_attempts=2, base_delay_s=0.01)


# ---------------------------------------------------------------------------- loopback provider


@dataclass
class Loopback:
    """What the fake provider received, and what it answers next."""

    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    body: dict[str, Any] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reply(self, text: str | None = "hello") -> dict[str, Any]:
        return {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    state = Loopback()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length) or b"{}")
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append({"headers": headers, "json": payload})
            body = state.body if state.body is not None else state.reply()
            if state.status != 200:  # echoes the key, as a careless provider might
                said = f"Incorrect API key provided: {headers.get('authorization', '')}"
                body = {"error": {"message": said, "type": "invalid"}}
            data = json.dumps(body).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def prompt_for(base: str, extra: str = "") -> str:
    return f"""---
model: openai/gpt-4o-mini
config:
  api_base: {base}
{extra}examples:
  - {{id: one, input: {{q: hi}}, expected: hello}}
metrics: [exact_match]
---
Say {{{{ q }}}}
"""


@pytest.fixture
def user_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.delenv("PROMPT_LSP_ALLOWED_HOSTS", raising=False)
    return ENV_KEY


async def run(path: Path, **options: Any):  # noqa: ANN201
    return await evaluate_prompt(path, path.read_text(), EvalOptions(retry=FAST, **options))


# ---------------------------------------------------------------------------- where keys go


async def test_a_file_chosen_host_never_receives_the_users_key(
    loopback: Loopback, user_key: str, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(prompt_for(loopback.base))
    with pytest.raises(EvalSetupError) as raised:
        await run(path)
    message = str(raised.value)
    assert "OPENAI_API_KEY" in message and "127.0.0.1" in message
    assert "PROMPT_LSP_ALLOWED_HOSTS=127.0.0.1" in message
    assert loopback.requests == []  # nothing was sent at all


async def test_other_spellings_of_the_endpoint_are_refused_too(
    loopback: Loopback, user_key: str, write_prompt: Callable[..., Path]
) -> None:
    text = prompt_for(loopback.base).replace("api_base:", "base_url:")
    with pytest.raises(EvalSetupError, match="base_url"):
        await run(write_prompt(text))
    referenced = prompt_for(loopback.base, "  api_key: os.environ/OPENAI_API_KEY\n")
    with pytest.raises(EvalSetupError, match="cannot read your environment"):
        await run(write_prompt(referenced, name="b.prompt"))
    assert loopback.requests == []


async def test_a_host_the_user_allowed_gets_the_key(
    loopback: Loopback,
    user_key: str,
    write_prompt: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_prompt(prompt_for(loopback.base))
    monkeypatch.setenv("PROMPT_LSP_ALLOWED_HOSTS", "example.org, 127.0.0.1")
    report = await run(path, use_cache=False)
    assert report.n_ok == 1, [r.error for r in report.results]
    assert loopback.requests[0]["headers"]["authorization"] == f"Bearer {ENV_KEY}"
    monkeypatch.delenv("PROMPT_LSP_ALLOWED_HOSTS")
    report = await run(path, use_cache=False, allowed_hosts=["127.0.0.1"])  # --allow-host
    assert report.n_ok == 1 and len(loopback.requests) == 2


async def test_a_file_with_its_own_key_sends_that_one_not_the_users(
    loopback: Loopback, user_key: str, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(prompt_for(loopback.base, f"  api_key: {FILE_KEY}\n"))
    report = await run(path)
    assert report.n_ok == 1, [r.error for r in report.results]
    headers = loopback.requests[0]["headers"]
    assert headers["authorization"] == f"Bearer {FILE_KEY}"
    assert ENV_KEY not in json.dumps(loopback.requests)


# ---------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    "body",
    [
        {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []},
        None,  # content: null
    ],
    ids=["no choices", "null content"],
)
async def test_an_empty_reply_is_an_error_and_is_not_cached(
    loopback: Loopback,
    user_key: str,
    write_prompt: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    body: dict[str, Any] | None,
) -> None:
    monkeypatch.setenv("PROMPT_LSP_ALLOWED_HOSTS", "127.0.0.1")
    loopback.body = body if body is not None else loopback.reply(None)
    path = write_prompt(prompt_for(loopback.base))
    report = await run(path)
    (result,) = report.results
    assert not result.ok
    assert "no choices" in str(result.error) or "no text" in str(result.error)
    assert report.status == "failed" and report.aggregates["exact_match"] is None
    loopback.body = None  # the provider recovers: the next run calls it again
    again = await run(path)
    assert again.n_ok == 1 and not again.results[0].cached
    assert len(loopback.requests) == 2


async def test_a_rejected_key_is_not_reported_as_missing(
    loopback: Loopback,
    user_key: str,
    write_prompt: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROMPT_LSP_ALLOWED_HOSTS", "127.0.0.1")
    loopback.status = 401
    report = await run(write_prompt(prompt_for(loopback.base)))
    error = str(report.results[0].error)
    assert "rejected the key (401)" in error and "OPENAI_API_KEY" in error
    assert "not set" not in error
    assert ENV_KEY not in error


async def test_a_key_the_provider_echoes_in_an_error_is_not_stored(
    loopback: Loopback, user_key: str, write_prompt: Callable[..., Path]
) -> None:
    loopback.status = 401
    path = write_prompt(prompt_for(loopback.base, f"  api_key: {FILE_KEY}\n"))
    report = await run(path)
    assert FILE_KEY in json.dumps(loopback.requests)  # it was sent, and echoed back
    error = str(report.results[0].error)
    assert FILE_KEY not in error
    assert "rejected the key (401): check the `api_key` in the prompt's config" in error
    assert FILE_KEY.encode() not in _stored_bytes(path.parent)


# ---------------------------------------------------------------------------- secrets

SHAPES = {
    "flow": "config: {{api_key: {key}, temperature: 0}}\n",
    "folded": "config:\n  api_key: >-\n    {head}\n    {tail}\n",
    "alias": "anchor: &k {key}\nconfig:\n  api_key: *k\n",
    "headers": "config:\n  extra_headers:\n    Authorization: Bearer {key}\n",
    "quoted": 'config:\n  api_key: "{key}"\n',
    "prompty connection": (
        "model:\n  id: scripted/test-model\n  connection:\n    type: openai\n    api_key: {key}\n"
    ),
    "prompty options": "model:\n  id: scripted/test-model\n  options:\n    token: {key}\n",
}


def secret_prompt(shape: str, key: str) -> str:
    head, tail = key[: len(key) // 2], key[len(key) // 2 :]
    front = SHAPES[shape].format(key=key, head=head, tail=tail)
    model = "" if shape.startswith("prompty") else "model: scripted/test-model\n"
    return (
        f"---\n{model}{front}examples:\n  - {{id: a, input: {{q: x}}, expected: 'echo: x'}}\n"
        "metrics: [exact_match]\n---\n{{ q }}\n"
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_a_literal_key_in_any_yaml_shape_gets_a_warning(shape: str) -> None:
    text = secret_prompt(shape, FILE_KEY)
    findings = [f for f in check_document(parse(text), None) if f.code == "secret-in-file"]
    assert len(findings) == 1, [f.message for f in findings]
    finding = findings[0]
    assert finding.severity.label == "warning"
    lines = text.split("\n")
    start, end = finding.range.start, finding.range.end
    covered = "\n".join(lines[start.line : end.line + 1])[start.character :]
    assert FILE_KEY[:8] in covered  # it points at the literal (for an alias, at its anchor)


def test_references_to_a_key_are_not_secrets() -> None:
    text = (
        "---\nmodel: openai/gpt-4o\nconfig:\n  api_key: ${env:OPENAI_API_KEY}\n"
        "  max_tokens: 10\n  extra_headers: {X-Api-Key: EMPTY}\n---\nhi\n"
    )
    assert not [f for f in check_document(parse(text), None) if f.code == "secret-in-file"]


def _stored_bytes(workspace: Path) -> bytes:
    """Everything prompt-lsp keeps: the workspace state and the user's cache folder."""
    data = b""
    for folder in (workspace / ".prompt-lsp", user_cache_dir()):
        for file in folder.rglob("*"):
            if file.is_file():
                data += file.read_bytes()
    return data


@pytest.mark.parametrize("shape", SHAPES)
async def test_no_key_is_ever_stored_whatever_its_yaml_shape(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path], shape: str
) -> None:
    key = f"sk-{shape.replace(' ', '')}-secret-9f8e7d6c5b4a"
    path = write_prompt(secret_prompt(shape, key))
    report = await run(path)
    assert report.n_ok == 1, [r.error for r in report.results]
    stored = _stored_bytes(path.parent)
    assert b"sk-" in stored or b"<redacted>" in stored  # something was stored
    for piece in (key, key[: len(key) // 2], key[len(key) // 2 :]):
        assert piece.encode() not in stored
    assert key not in json.dumps(report.to_json())
    history = sqlite3.connect(path.parent / ".prompt-lsp" / "history.sqlite3")
    (text,) = history.execute("SELECT text FROM versions").fetchone()
    history.close()
    assert "<redacted>" in text and "{{ q }}" in text  # the rest of the prompt is kept


async def test_two_keys_never_share_a_cache_entry(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    first = write_prompt(secret_prompt("flow", "sk-first-key-0000000000"), name="a.prompt")
    await run(first)
    second = write_prompt(secret_prompt("flow", "sk-second-key-111111111"), name="b.prompt")
    report = await run(second)
    assert not report.results[0].cached and scripted.call_count == 2
    again = await run(second)
    assert again.results[0].cached and scripted.call_count == 2


# ---------------------------------------------------------------------------- repository files


async def test_a_cache_shipped_in_the_repository_supplies_no_outputs(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(secret_prompt("flow", "x").replace("config: {api_key: x, ", "config: {"))
    first = await run(path)
    assert scripted.call_count == 1 and first.results[0].output == "echo: x"
    # an attacker ships a workspace cache whose every entry says something else
    real = ResponseCache(response_cache_path(path.parent))
    keys = [row[0] for row in real._connection().execute("SELECT key FROM responses")]
    real.close()
    shipped = ResponseCache(path.parent / ".prompt-lsp" / "cache.sqlite3")
    for key in keys:
        shipped.put(key, "m", CachedReply("attacker's text", 1, 1, 0.0, 0.1))
    shipped.close()
    response_cache_path(path.parent).unlink()  # as in a fresh clone on this machine
    report = await run(path)
    assert report.results[0].output == "echo: x" and not report.results[0].cached
    assert scripted.call_count == 2


async def test_examples_outside_the_workspace_are_not_read(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path], tmp_path_factory: Any
) -> None:
    private = tmp_path_factory.mktemp("private") / "secrets.jsonl"
    private.write_text('{"input": {"q": "my private data"}}\n')
    text = "---\nmodel: scripted/test-model\nexamples: {where}\n---\n{{{{ q }}}}\n"
    link = write_prompt(text.format(where="cases.jsonl"))
    (link.parent / "cases.jsonl").symlink_to(private)
    for path in (link, write_prompt(text.format(where=private), name="abs.prompt")):
        with pytest.raises(EvalSetupError, match="outside the workspace"):
            await run(path)
        findings = check_document(parse(path.read_text()), _examples(path))
        assert any("outside the workspace" in f.message for f in findings)
    assert scripted.call_count == 0


def _examples(path: Path) -> Any:
    from prompt_lsp.evaluation.examples import load_examples

    return load_examples(parse(path.read_text()), path)


def test_writes_stay_under_the_state_folder_with_safe_names(tmp_path: Path) -> None:
    from prompt_lsp.history.paths import UnsafePathError, write_output

    (tmp_path / ".git").mkdir()
    target = write_output(tmp_path, "prompt./../../../../tmp/x.md", "text")
    assert target.parent == tmp_path / ".prompt-lsp" / "out"
    assert target.read_text() == "text" and "/" not in target.name
    assert not Path("/tmp/x.md").exists() or Path("/tmp/x.md").read_text() != "text"

    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    shipped = tmp_path / "repo"
    (shipped / ".prompt-lsp").mkdir(parents=True)
    (shipped / ".prompt-lsp" / "out").symlink_to(elsewhere)  # shipped in a repository
    with pytest.raises(UnsafePathError, match="symlink"):
        write_output(shipped, "a.md", "text")
    assert list(elsewhere.iterdir()) == []


def test_replacing_a_gguf_file_changes_its_cache_keys(write_prompt: Callable[..., Path]) -> None:
    import os

    from prompt_lsp.evaluation.session import plan_run

    path = write_prompt(
        "---\nmodel: local/weights.gguf\nexamples:\n  - {id: a, input: {q: x}}\n---\n{{ q }}\n"
    )
    weights = path.parent / "weights.gguf"
    weights.write_bytes(b"GGUF one")
    before = plan_run(path, path.read_text(), EvalOptions()).items[0].key
    assert plan_run(path, path.read_text(), EvalOptions()).items[0].key == before
    weights.write_bytes(b"GGUF two, longer")
    os.utime(weights, ns=(1, 1))
    assert plan_run(path, path.read_text(), EvalOptions()).items[0].key != before


async def test_a_history_shipped_in_the_repository_is_not_trusted(
    scripted: ScriptedProvider,
    write_prompt: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: Any,
) -> None:
    from prompt_lsp.evaluation.session import load_last_report

    path = write_prompt(secret_prompt("flow", "x").replace("config: {api_key: x, ", "config: {"))
    other_machine = tmp_path_factory.mktemp("other-machine-cache")
    with monkeypatch.context() as elsewhere:  # the attacker's machine wrote this history
        elsewhere.setenv("XDG_CACHE_HOME", str(other_machine))
        shipped = await run(path)
        assert load_last_report(path, path.read_text()) is not None  # theirs, to them
    assert shipped.recorded
    # here, its runs are not shown as this prompt's scores
    assert load_last_report(path, path.read_text()) is None
    # a run here starts a fresh history; the shipped one is set aside, not read
    report = await run(path)
    with sqlite3.connect(path.parent / ".prompt-lsp" / "history.sqlite3") as history:
        runs = [row[0] for row in history.execute("SELECT id FROM runs")]
    assert runs == [report.run_id]  # none of the shipped runs
    mine = load_last_report(path, path.read_text())
    assert mine is not None and mine.run_id == report.run_id
    state = path.parent / ".prompt-lsp"
    assert [p.name for p in state.glob("history.untrusted-*.sqlite3")] != []
