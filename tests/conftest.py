"""Shared fixtures. Others may append fixtures below; keep each one self-contained."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# ---------------------------------------------------------------------------- scripted provider


@dataclass
class Step:
    """What one call to the scripted provider does.

    kind: "ok" (reply `text`), "rate_limit" (429, with `retry_after` seconds if given),
    "server_error" (503), "timeout" (litellm.Timeout), "raise" (a plain exception inside the
    provider), "hang" (sleep `delay` seconds, then reply: the runner's timeout fires first).
    `delay` is slept before any kind, to give calls a fixed latency."""

    kind: str = "ok"
    text: str = ""
    retry_after: float | None = None
    delay: float = 0.0
    prompt_tokens: int = 7
    completion_tokens: int = 3


Behaviour = Callable[[str, int], Step]  # (last user message, attempt number 1..) -> Step


class ScriptedProvider:
    """Controls the `scripted/…` litellm provider; counts calls per prompt."""

    model = "scripted/test-model"

    def __init__(self) -> None:
        self.behaviour: Behaviour = lambda prompt, attempt: Step(text=f"echo: {prompt}")
        self.calls: list[str] = []
        self.call_times: list[float] = []
        self.attempts: Counter[str] = Counter()
        self.params: list[dict[str, Any]] = []  # litellm's optional_params of each call
        self.in_flight = 0
        self.max_in_flight = 0

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def script(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    def replies(self, table: dict[str, str], default: str = "") -> None:
        """Reply `table[content]` for a prompt whose text contains a key; else `default`."""

        def behaviour(prompt: str, attempt: int) -> Step:
            for needle, reply in table.items():
                if needle in prompt:
                    return Step(text=reply)
            return Step(text=default)

        self.behaviour = behaviour

    @property
    def call_count(self) -> int:
        return len(self.calls)

    async def handle(
        self, messages: list[dict[str, Any]], model_response: Any, params: dict[str, Any]
    ) -> Any:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._handle(messages, model_response, params)
        finally:
            self.in_flight -= 1

    async def _handle(
        self, messages: list[dict[str, Any]], model_response: Any, params: dict[str, Any]
    ) -> Any:
        import httpx
        import litellm
        from litellm.types.utils import Usage

        prompt = str(messages[-1].get("content", "")) if messages else ""
        self.attempts[prompt] += 1
        self.calls.append(prompt)
        self.call_times.append(time.monotonic())
        self.params.append(dict(params))
        step = self.behaviour(prompt, self.attempts[prompt])
        if step.delay:
            await asyncio.sleep(step.delay)
        request = httpx.Request("POST", "http://scripted.invalid/v1/chat")
        if step.kind == "rate_limit":
            headers = {} if step.retry_after is None else {"retry-after": str(step.retry_after)}
            response = httpx.Response(429, headers=headers, request=request)
            raise litellm.RateLimitError(
                "scripted rate limit", llm_provider="scripted", model=self.model, response=response
            )
        if step.kind == "server_error":
            raise litellm.ServiceUnavailableError(
                "scripted outage",
                llm_provider="scripted",
                model=self.model,
                response=httpx.Response(503, request=request),
            )
        if step.kind == "timeout":
            raise litellm.Timeout("scripted timeout", model=self.model, llm_provider="scripted")
        if step.kind == "raise":
            raise ValueError("scripted provider bug")
        if step.kind == "hang":
            await asyncio.sleep(3600)
        model_response.choices[0].message.content = step.text
        model_response.usage = Usage(
            prompt_tokens=step.prompt_tokens,
            completion_tokens=step.completion_tokens,
            total_tokens=step.prompt_tokens + step.completion_tokens,
        )
        model_response._hidden_params["response_cost"] = 0.0
        return model_response


def make_scripted_handler(controller: ScriptedProvider) -> Any:
    from prompt_lsp.evaluation.providers import load_litellm

    load_litellm()  # first: it sets LITELLM_LOCAL_MODEL_COST_MAP before the import
    from litellm import CustomLLM

    class ScriptedLLM(CustomLLM):
        async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            params = kwargs.get("optional_params") or {}
            return await controller.handle(messages, kwargs["model_response"], params)

    return ScriptedLLM()


@pytest.fixture(scope="session")
def _scripted_session() -> Iterator[ScriptedProvider]:
    from prompt_lsp.evaluation.providers import register_provider, unregister_provider

    controller = ScriptedProvider()
    register_provider("scripted", make_scripted_handler(controller))
    yield controller
    unregister_provider("scripted")


@pytest.fixture
def scripted(_scripted_session: ScriptedProvider) -> ScriptedProvider:
    """The `scripted/test-model` litellm provider, reset for this test (default: echo)."""
    _scripted_session.reset()
    return _scripted_session


# ---------------------------------------------------------------------------- prompt files


@pytest.fixture
def write_prompt(tmp_path: Path) -> Callable[..., Path]:
    """Write a `.prompt` file (and optional examples file) into a fresh workspace folder.

    The folder gets a `.git` directory so the state folder is created inside it."""
    (tmp_path / ".git").mkdir(exist_ok=True)

    def write(
        text: str,
        name: str = "test.prompt",
        examples: str | None = None,
        examples_name: str = "cases.jsonl",
    ) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        if examples is not None:
            (tmp_path / examples_name).write_text(textwrap.dedent(examples).lstrip("\n"))
        return path

    return write


def run_editor(
    command: list[str], prompt: Path, timeout: float, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """A headless editor session on `prompt`, in its folder, as a user starts one: the
    server runs with this interpreter, the session's script finds the file in PROMPT_FILE."""
    environment = {
        **os.environ,
        "PROMPT_LSP_PYTHON": sys.executable,
        "PROMPT_FILE": str(prompt),
        **env,
    }
    return subprocess.run(
        command,
        cwd=prompt.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def llama_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


# ---------------------------------------------------------------------------- user cache folder


@pytest.fixture(scope="session", autouse=True)
def _private_user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The response cache lives in the user's cache folder: tests (and the servers they start)
    get their own, never the real `~/.cache`."""
    import os

    folder = tmp_path_factory.mktemp("xdg-cache")
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous
