"""The HTTP path users run: `prompt-lsp eval` against an OpenAI-compatible server on loopback,
and the light client compared call for call with litellm on the same mock server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mock_openai import MockOpenAI, MockStep

from prompt_lsp.evaluation.openai_http import OpenAIHttpClient, light_client_handles
from prompt_lsp.evaluation.providers import (
    describe_error,
    is_retryable,
    litellm_transport,
    retry_after_seconds,
)
from prompt_lsp.evaluation.runner import RetryPolicy, Runner, RunSettings, WorkItem

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-loopback-0123456789"
PROMPT = """\
---
model: openai/mock-model
config:
  temperature: 0
  max_tokens: 20
examples: cases.jsonl
metrics:
  - rougeL
---
system:
Be brief.
user:
Repeat {{ word }}
"""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockOpenAI]:
    with MockOpenAI() as mock:
        monkeypatch.setenv("OPENAI_BASE_URL", mock.base_url)
        monkeypatch.delenv("OPENAI_API_BASE", raising=False)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        for name in ("OPENAI_ORGANIZATION", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
            monkeypatch.delenv(name, raising=False)
        yield mock


def _workspace(tmp_path: Path, words: list[str]) -> Path:
    (tmp_path / ".git").mkdir()
    rows = [{"id": w, "input": {"word": w}, "expected": f"Repeat {w}"} for w in words]
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "mock.prompt"
    path.write_text(PROMPT)
    return path


def _cli_env(server: MockOpenAI, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT),
        OPENAI_API_KEY=KEY,
        OPENAI_BASE_URL=server.base_url,
        XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
    )
    return env


# ---------------------------------------------------------------------------- the CLI


def test_json_to_stdout_pipes_into_json_tool(server: MockOpenAI, tmp_path: Path) -> None:
    path = _workspace(tmp_path, ["alpha", "beta"])
    command = (
        f"{sys.executable} -m prompt_lsp eval {path.name} --json - | {sys.executable} -m json.tool"
    )
    done = subprocess.run(
        command,
        shell=True,
        cwd=tmp_path,
        env=_cli_env(server, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["model"] == "openai/mock-model"
    assert {r["id"] for r in report["examples"]} == {"alpha", "beta"}
    assert "rougeL" in done.stderr  # the table went to stderr
    assert server.count == 2


def test_a_run_on_the_light_client_never_imports_litellm(
    server: MockOpenAI, tmp_path: Path
) -> None:
    path = _workspace(tmp_path, ["alpha", "beta", "gamma"])
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from prompt_lsp.evaluation.session import EvalOptions, evaluate_prompt
        path = Path({str(path)!r})
        report = asyncio.run(evaluate_prompt(path, path.read_text(), EvalOptions()))
        print(report.n_ok, "litellm" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=_cli_env(server, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "False"]
    bodies = [r.body for r in server.requests]
    assert sorted(b["messages"][-1]["content"] for b in bodies) == [
        "Repeat alpha",
        "Repeat beta",
        "Repeat gamma",
    ]


def test_missing_key_is_one_line_before_any_request(server: MockOpenAI, tmp_path: Path) -> None:
    path = _workspace(tmp_path, ["alpha"])
    env = _cli_env(server, tmp_path)
    del env["OPENAI_API_KEY"]
    done = subprocess.run(
        [sys.executable, "-m", "prompt_lsp", "eval", path.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "OPENAI_API_KEY is not set" in done.stderr and "Traceback" not in done.stderr
    assert server.count == 0


# ---------------------------------------------------------------------------- same as litellm


async def _light(model: str, messages: list[dict[str, str]], config: dict[str, Any]) -> Any:
    client = OpenAIHttpClient()
    try:
        return await client.complete(model, messages, config)
    finally:
        await client.aclose()


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi ünïcode"}]
CONFIG = {"temperature": 0.2, "max_tokens": 7, "stop": ["\n"], "seed": 3, "top_p": 0.9}


async def test_the_light_client_sends_the_request_litellm_sends(server: MockOpenAI) -> None:
    assert light_client_handles("openai/gpt-4o-mini", CONFIG)
    reference = await litellm_transport("openai/gpt-4o-mini", MESSAGES, dict(CONFIG), 30)
    light = await _light("openai/gpt-4o-mini", MESSAGES, dict(CONFIG))
    via_litellm, via_light = server.requests
    assert via_light.path == via_litellm.path == "/v1/chat/completions"
    assert via_light.body == via_litellm.body
    for header in ("Authorization", "Content-Type"):
        assert via_light.headers[header] == via_litellm.headers[header]
    assert via_light.headers["Authorization"] == f"Bearer {KEY}"
    assert light.text == reference.text
    assert (light.prompt_tokens, light.completion_tokens) == (
        reference.prompt_tokens,
        reference.completion_tokens,
    )
    assert reference.cost > 0  # gpt-4o-mini has a price: both clients compute the same one
    assert light.cost == pytest.approx(reference.cost)


async def test_the_prompts_api_base_is_used_by_both(server: MockOpenAI, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # closed: must not be used
    config = {"api_base": server.base_url, "temperature": 0}
    await litellm_transport("openai/mock-model", MESSAGES, dict(config), 30)
    await _light("openai/mock-model", MESSAGES, dict(config))
    assert server.count == 2
    assert server.requests[0].body == server.requests[1].body


def test_calls_the_light_client_cannot_make_identically_go_to_litellm() -> None:
    assert not light_client_handles("gpt-4o-mini", {})  # bare name: litellm resolves it
    assert not light_client_handles("anthropic/claude-3-5-haiku", {})
    assert not light_client_handles("openai/o3-mini", {"max_tokens": 5})  # litellm rewrites
    assert not light_client_handles("openai/gpt-4o", {"tools": []})
    assert not light_client_handles("openai/gpt-4o", {"mock_response": "x"})


ERROR_STEPS = {
    "400": MockStep(status=400, error="bad parameter"),
    "401": MockStep(status=401, error=f"Incorrect API key provided: {KEY}"),
    "403": MockStep(status=403, error="no access"),
    "404": MockStep(status=404, error="no such model"),
    "408": MockStep(status=408, error="too slow"),
    "409": MockStep(status=409, error="conflict"),
    "422": MockStep(status=422, error="unprocessable"),
    "429": MockStep(status=429, error="slow down", headers={"retry-after": "1.5"}),
    "429ms": MockStep(status=429, error="slow down", headers={"retry-after-ms": "250"}),
    "500": MockStep(status=500, error="boom"),
    "502": MockStep(status=502, error="bad gateway"),
    "503": MockStep(status=503, error="overloaded"),
    "504": MockStep(status=504, error="gateway timeout"),
    "529": MockStep(status=529, error="overloaded"),
    "text": MockStep(status=502, text="<html>Bad Gateway</html>"),
    "null": MockStep(content_null=True),
    "nochoices": MockStep(no_choices=True),
}


async def test_errors_are_described_and_retried_as_litellms(server: MockOpenAI) -> None:
    server.behaviour = lambda body, attempt: ERROR_STEPS[body["messages"][-1]["content"]]
    for name in ERROR_STEPS:
        messages = [{"role": "user", "content": name}]
        with pytest.raises(Exception) as litellm_error:
            await litellm_transport("openai/mock-model", messages, {}, 30)
        with pytest.raises(Exception) as light_error:
            await _light("openai/mock-model", messages, {})
        reference, light = litellm_error.value, light_error.value
        assert type(light).__name__ == type(reference).__name__, name
        assert describe_error(light, "openai/mock-model") == describe_error(
            reference, "openai/mock-model"
        ), name
        assert is_retryable(light) == is_retryable(reference), name
        assert retry_after_seconds(light) == retry_after_seconds(reference), name
        assert KEY not in describe_error(light, "openai/mock-model")


async def test_a_refused_connection_is_a_retryable_connection_error(monkeypatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    config = {"api_base": f"http://127.0.0.1:{port}/v1"}
    with pytest.raises(Exception) as litellm_error:
        await litellm_transport("openai/mock-model", MESSAGES, dict(config), 30)
    with pytest.raises(Exception) as light_error:
        await _light("openai/mock-model", MESSAGES, dict(config))
    assert is_retryable(light_error.value) and is_retryable(litellm_error.value)
    assert describe_error(light_error.value, "openai/m") == describe_error(
        litellm_error.value, "openai/m"
    )


def _items(words: list[str]) -> list[WorkItem]:
    from prompt_lsp.format.examples import Example

    items = []
    for index, word in enumerate(words):
        example = Example(index, word, {"word": word}, None, has_expected=False, line=index)
        items.append(WorkItem(example, 0, [{"role": "user", "content": word}], word))
    return items


async def test_the_runner_retries_and_times_out_light_calls(server: MockOpenAI) -> None:
    def behaviour(body: dict[str, Any], attempt: int) -> MockStep:
        word = body["messages"][-1]["content"]
        if word == "flaky" and attempt < 3:
            return MockStep(status=429, headers={"retry-after": "0.01"})
        if word == "hangs":
            return MockStep(hang=True)
        return MockStep(content=f"ok {word}")

    server.behaviour = behaviour
    from prompt_lsp.evaluation.providers import RunTransport

    transport = RunTransport()
    settings = RunSettings(
        model="openai/mock-model",
        config={"temperature": 0},
        metrics=[],
        concurrency=3,
        timeout_s=0.5,
        retry=RetryPolicy(max_attempts=4, base_delay_s=0.01),
    )
    try:
        outcome = await Runner(settings, transport).run(_items(["fine", "flaky", "hangs"]))
    finally:
        await transport.aclose()
    by_id = {r.id: r for r in outcome.results}
    assert by_id["fine"].output == "ok fine"
    assert by_id["flaky"].output == "ok flaky"  # after two 429s
    assert by_id["hangs"].error is not None and "timed out" in by_id["hangs"].error
    assert outcome.retries >= 2 + 3  # flaky twice; the hanging call on every attempt
    flaky_calls = [r for r in server.requests if r.body["messages"][-1]["content"] == "flaky"]
    assert len(flaky_calls) == 3


# ---------------------------------------------------------------------------- many examples

STREAMED = 300  # more than the session renders before the first call


def _words(count: int) -> list[str]:
    return [f"w{i}" for i in range(count)]


async def test_a_long_run_answers_every_example_in_order_and_caches_them_all(
    server: MockOpenAI, tmp_path: Path
) -> None:
    from prompt_lsp.evaluation.session import EvalOptions, evaluate_prompt

    path = _workspace(tmp_path, _words(STREAMED))
    first = await evaluate_prompt(path, path.read_text(), EvalOptions())
    assert [r.id for r in first.results] == _words(STREAMED)
    assert first.n_ok == first.total == STREAMED and server.count == STREAMED
    # each reply is to its own example's messages (the mock quotes the last one)
    assert all(r.output == f"A short summary of Repeat {r.id}" for r in first.results)
    again = await evaluate_prompt(path, path.read_text(), EvalOptions())
    assert server.count == STREAMED  # every example, the last rendered too, from the cache
    assert all(r.cached for r in again.results) and again.n_ok == STREAMED


async def test_late_examples_that_cannot_render_fail_alone(
    server: MockOpenAI, tmp_path: Path
) -> None:
    from prompt_lsp.evaluation.session import EvalOptions, evaluate_prompt

    path = _workspace(tmp_path, _words(STREAMED))
    rows = [json.loads(line) for line in (tmp_path / "cases.jsonl").read_text().splitlines()]
    for row in rows[250:]:
        row["input"]["word"] = {"nested": "mapping"}
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path.write_text(PROMPT.replace("{{ word }}", "{{ word.upper() }}"))
    report = await evaluate_prompt(path, path.read_text(), EvalOptions())
    assert report.total == STREAMED and report.n_ok == 250 and server.count == 250
    failed = report.results[260]
    assert failed.output is None and "cannot render example 261" in (failed.error or "")


async def test_a_template_no_example_renders_is_one_error_however_many(
    server: MockOpenAI, tmp_path: Path
) -> None:
    from prompt_lsp.evaluation.session import EvalOptions, EvalSetupError, evaluate_prompt

    path = _workspace(tmp_path, _words(STREAMED))
    rows = [json.loads(line) for line in (tmp_path / "cases.jsonl").read_text().splitlines()]
    for row in rows[:-1]:  # the last one renders: the run goes on
        row["input"]["word"] = {"nested": "mapping"}
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path.write_text(PROMPT.replace("{{ word }}", "{{ word.upper() }}"))
    report = await evaluate_prompt(path, path.read_text(), EvalOptions())
    assert report.n_ok == 1 and report.n_failed == STREAMED - 1 and server.count == 1
    rows[-1]["input"]["word"] = {"nested": "mapping"}
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(EvalSetupError, match="and so does every other example"):
        await evaluate_prompt(path, path.read_text(), EvalOptions())
    assert server.count == 1
