"""A mock OpenAI-compatible chat server on 127.0.0.1 for tests and `bench/eval_http.py`.

It answers `POST /v1/chat/completions` (and `/chat/completions`) after a fixed latency with a
reply derived from the request, counts requests and the peak number in flight, keeps every
request (path, headers, JSON body) for tests, and can be scripted to fail: `behaviour(body,
attempt)` returns a `MockStep` (status, headers, delay, body override). It runs its own event
loop in a daemon thread, so a test or benchmark can drive a subprocess or a client meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class MockStep:
    """What the server does with one request: `status` 200 answers; others send `error`."""

    status: int = 200
    delay: float | None = None  # None: the server's latency
    headers: dict[str, str] = field(default_factory=dict)
    error: str = "mock error"
    content: str | None = None  # None: the default reply
    hang: bool = False  # never answer (a client timeout must fire)
    text: str | None = None  # a plain-text body instead of JSON (a proxy's error page)
    content_null: bool = False  # a 200 whose message content is null
    no_choices: bool = False  # a 200 with an empty choices list


Behaviour = Callable[[dict[str, Any], int], MockStep]  # (request body, attempt number) -> step


def default_reply(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{}]
    return "A short summary of " + str(messages[-1].get("content", ""))[:40]


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float  # time.time() on arrival


class MockOpenAI:
    """`with MockOpenAI(latency_s=0.1) as server: ... server.base_url ...`"""

    def __init__(
        self,
        latency_s: float = 0.0,
        behaviour: Behaviour | None = None,
        keep_requests: bool = True,
        prompt_tokens: int = 30,
        completion_tokens: int = 12,
    ) -> None:
        self.latency_s = latency_s
        self.behaviour = behaviour
        self.keep_requests = keep_requests
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.requests: list[SeenRequest] = []
        self.count = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.first_request_at: float | None = None
        self.last_response_at: float | None = None
        self.attempts: Counter[str] = Counter()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        self.requests.clear()
        self.count = self.in_flight = self.peak_in_flight = 0
        self.first_request_at = self.last_response_at = None
        self.attempts.clear()

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> MockOpenAI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="mock-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the mock server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/chat/completions", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    # ------------------------------------------------------------------ requests

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        now = time.time()
        if self.first_request_at is None:
            self.first_request_at = now
        self.count += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            body = await request.json()
            if self.keep_requests:
                self.requests.append(SeenRequest(request.path, dict(request.headers), body, now))
            key = json.dumps(body.get("messages"), sort_keys=True)
            self.attempts[key] += 1
            step = self.behaviour(body, self.attempts[key]) if self.behaviour else MockStep()
            if step.hang:
                await asyncio.sleep(3600)
            delay = self.latency_s if step.delay is None else step.delay
            if delay:
                await asyncio.sleep(delay)
            if step.text is not None:
                return web.Response(text=step.text, status=step.status, headers=step.headers)
            if step.status != 200:
                error = {"error": {"message": step.error, "type": "mock", "code": step.status}}
                return web.json_response(error, status=step.status, headers=step.headers)
            content = default_reply(body) if step.content is None else step.content
            completion = self._completion(body, None if step.content_null else content)
            if step.no_choices:
                completion["choices"] = []
            return web.json_response(completion, headers=step.headers)
        finally:
            self.in_flight -= 1
            self.last_response_at = time.time()

    def _completion(self, body: dict[str, Any], content: str | None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-mock-{self.count}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "mock"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
        }
