"""A raw JSON-RPC client over a real server's stdio, for messages no LSP library would send
(malformed params, oversized headers, requests out of the lifecycle)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVER_COMMAND = [sys.executable, "-m", "prompt_lsp", "serve"]


class RawServer:
    """The server as a subprocess; `send` writes framed bytes, `request` waits for its answer."""

    def __init__(self, command: list[str] | None = None, cwd: Path | None = None) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            command or SERVER_COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
        )
        self.responses: dict[Any, dict[str, Any]] = {}
        self.notifications: queue.Queue[dict[str, Any]] = queue.Queue()
        self._arrived = threading.Condition()
        self._next_id = 0
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    # ------------------------------------------------------------ sending

    def send_bytes(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: dict[str, Any] | str | bytes) -> None:
        body = (
            message
            if isinstance(message, bytes)
            else (message.encode() if isinstance(message, str) else json.dumps(message).encode())
        )
        self.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def request(
        self, method: str, params: Any = None, timeout: float = 10.0, **extra: Any
    ) -> dict[str, Any]:
        msg_id = self.new_id()
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method, **extra}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.wait(msg_id, timeout)

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def wait(self, msg_id: Any, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while msg_id not in self.responses:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise TimeoutError(
                        f"no answer to {msg_id!r} (server {'exited' if self.process.poll() is not None else 'alive'})"
                        f"; stderr tail: {''.join(self.stderr[-5:])}"
                    )
                self._arrived.wait(min(left, 0.1))
            return self.responses.pop(msg_id)

    def initialize(self, root: Path, encoding: str | None = None) -> dict[str, Any]:
        general = {"positionEncodings": [encoding]} if encoding else {}
        answer = self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "capabilities": {"general": general} if general else {},
            },
            timeout=30.0,
        )
        self.notify("initialized", {})
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.request("shutdown", timeout=5.0)
                self.notify("exit")
                self.process.wait(5.0)
            except (TimeoutError, OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(5.0)

    # ------------------------------------------------------------ reading

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            if length is None:
                continue
            message = json.loads(stream.read(length))
            if "id" in message and "method" not in message:
                with self._arrived:
                    self.responses[message["id"]] = message
                    self._arrived.notify_all()
            elif "id" in message:  # a request from the server: settings unset, else null
                result = None
                if message["method"] == "workspace/configuration":
                    result = [None] * len(message["params"]["items"])
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})
            else:
                self.notifications.put(message)

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line.decode("utf-8", "replace"))
