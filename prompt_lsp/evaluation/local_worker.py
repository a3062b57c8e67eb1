"""The embedded model in a worker process, so a local evaluation never slows typing.

llama.cpp holds the GIL only briefly, but it keeps every core it is given busy; in the
language server's process that showed as 86–146 ms completions while an evaluation ran. The
worker is a child process (`python -m prompt_lsp.evaluation.local_worker`) started on the first
local generation and kept for the next ones (the model stays loaded, and llama.cpp reuses its
key-value cache for the prompt prefix every example shares). It runs at a lower priority
(`os.nice`), dies with its parent (it watches its parent process id and its input), and
talks JSON lines over its stdin/stdout: `generate` (streams `token` progress events, then
`done` or `error`), `cancel` (stops a generation at its next token) and `stop`.

The parent side is `agenerate()` (awaited; the runner has as many generations in flight as the
worker decodes together) or `generate()` (blocking, cancellable with a `threading.Event`); both
raise `LocalModelError` for what the model cannot do.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from prompt_lsp.evaluation.local_model import Generation, LocalModelError

NICENESS = 10  # below the editor and the language server
PROGRESS_EVERY = 4  # tokens between progress events
IDLE_STOP_S = 300.0  # an idle worker gives its memory back after this long
_CANCEL_POLL_S = 0.05
_PARENT_POLL_S = 0.5

ProgressCallback = Callable[[int], None]  # generated tokens so far
_Waiting = tuple[
    "Future[dict[str, Any]]", ProgressCallback | None, "subprocess.Popen[bytes] | None"
]


class LocalWorker:
    """One worker process and the generations waiting for it. After `idle_s` without a
    generation the worker is stopped, and its memory (the model, the caches of all its
    sequences: 680 MB for the embedded model) returned; the next generation starts another."""

    def __init__(self, idle_s: float = IDLE_STOP_S) -> None:
        self.idle_s = idle_s
        self._last_used = time.monotonic()
        self._idle_timer: threading.Timer | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._ids = itertools.count(1)
        # request id → its reply to come, its progress callback, the process it was sent to
        self._pending: dict[int, _Waiting] = {}

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        with self._state_lock:
            if self.running():
                return
            env = dict(os.environ)
            root = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
            self._process = subprocess.Popen(
                [sys.executable, "-m", "prompt_lsp.evaluation.local_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal goes to the parent, which cancels
            )
            reader = threading.Thread(
                target=self._read, args=(self._process,), name="local-worker-reader", daemon=True
            )
            reader.start()

    def stop(self) -> None:
        """Ask the worker to leave; kill it if it does not within a second."""
        with self._state_lock:
            process, self._process = self._process, None
        self._end(process)

    def _stop_when_idle(self) -> None:
        """The idle timer: stop the worker unless a generation waits or came meanwhile."""
        with self._state_lock:
            if self._pending or time.monotonic() - self._last_used < self.idle_s:
                return
            process, self._process = self._process, None
        self._end(process)

    def _arm_idle_timer(self) -> None:
        self._last_used = time.monotonic()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = threading.Timer(self.idle_s, self._stop_when_idle)
        self._idle_timer.daemon = True
        self._idle_timer.start()

    def _end(self, process: subprocess.Popen[bytes] | None) -> None:
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._send_to(process, {"op": "stop"})
            process.stdin.close()  # type: ignore[union-attr]
        try:
            process.wait(1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def submit(
        self,
        gguf: Path,
        prompt: str,
        params: dict[str, Any],
        on_progress: ProgressCallback | None = None,
    ) -> tuple[int, Future[dict[str, Any]]]:
        """Send one generation to the worker (started if needed): its id and its reply to
        come; the worker decodes the generations it has together. `finish(id)` after."""
        self._last_used = time.monotonic()  # before start(): the idle timer must not stop it
        self.start()
        request_id = next(self._ids)
        future: Future[dict[str, Any]] = Future()
        self._pending[request_id] = (future, on_progress, self._process)
        message = {
            "op": "generate",
            "id": request_id,
            "gguf": str(gguf),
            "prompt": prompt,
            "params": params,
        }
        try:
            self._send(message)
        except LocalModelError:
            self._pending.pop(request_id, None)
            raise
        return request_id, future

    def cancel(self, request_id: int) -> None:
        """Stop a generation at its next token (its reply still comes, with what it has)."""
        with contextlib.suppress(OSError, ValueError, LocalModelError):
            self._send({"op": "cancel", "id": request_id})

    def finish(self, request_id: int) -> None:
        self._pending.pop(request_id, None)
        self._arm_idle_timer()

    def generate(
        self,
        gguf: Path,
        prompt: str,
        params: dict[str, Any],
        abort: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Generation:
        """One generation in the worker; blocking."""
        request_id, future = self.submit(gguf, prompt, params, on_progress)
        try:
            return generation_from(self._wait(future, request_id, abort))
        finally:
            self.finish(request_id)

    def _wait(
        self, future: Future[dict[str, Any]], request_id: int, abort: threading.Event | None
    ) -> dict[str, Any]:
        cancelled = False
        while True:
            try:
                return future.result(_CANCEL_POLL_S)
            except FutureTimeout:
                pass
            if abort is not None and abort.is_set() and not cancelled:
                cancelled = True
                self.cancel(request_id)

    def _send(self, message: dict[str, Any]) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            raise LocalModelError("the local model's worker process is not running")
        try:
            self._send_to(process, message)
        except (OSError, ValueError) as err:
            raise LocalModelError("the local model's worker process stopped") from err

    def _send_to(self, process: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
        line = json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
        with self._write_lock:
            process.stdin.write(line)  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        """Dispatch the worker's events to the waiting generations, until it exits."""
        assert process.stdout is not None
        for raw in process.stdout:
            try:
                event = json.loads(raw)
                request_id = int(event["id"])
            except (ValueError, KeyError, TypeError):
                continue
            waiting = self._pending.get(request_id)
            if waiting is None:
                continue
            future, on_progress, _ = waiting
            if event.get("event") == "token":
                if on_progress is not None:
                    with contextlib.suppress(Exception):
                        on_progress(int(event.get("count", 0)))
            elif not future.done():
                future.set_result(event)
        for future, _, sent_to in list(self._pending.values()):  # it died: fail what it had
            if sent_to is process and not future.done():
                future.set_result({"event": "error", "message": _death_message(process)})


def generation_from(reply: dict[str, Any]) -> Generation:
    """The worker's `done` event as a Generation; its `error` event as LocalModelError."""
    if reply.get("event") == "error":
        raise LocalModelError(str(reply.get("message") or "the local model failed"))
    return Generation(
        text=str(reply.get("text", "")),
        prompt_tokens=int(reply.get("prompt_tokens", 0)),
        completion_tokens=int(reply.get("completion_tokens", 0)),
        finish_reason=str(reply.get("finish_reason", "stop")),
        seconds=float(reply.get("seconds", 0.0)),
    )


def _death_message(process: subprocess.Popen[bytes]) -> str:
    code = process.poll()
    if code is not None and code < 0:
        return f"the local model's worker process was killed ({signal.Signals(-code).name})"
    return "the local model's worker process stopped"


_worker: LocalWorker | None = None
_worker_lock = threading.Lock()


def shared_worker() -> LocalWorker:
    """The process's one worker (a model loads once; one generation runs at a time)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = LocalWorker()
            atexit.register(stop_worker)
        return _worker


def stop_worker() -> None:
    """Stop the worker (the next local generation starts a new one)."""
    with _worker_lock:
        worker = _worker
    if worker is not None:
        worker.stop()


def generate(
    gguf: Path,
    prompt: str,
    params: dict[str, Any],
    abort: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> Generation:
    """Generate with the embedded model in the shared worker process; blocking."""
    return shared_worker().generate(gguf, prompt, params, abort, on_progress)


async def agenerate(
    gguf: Path,
    prompt: str,
    params: dict[str, Any],
    on_progress: ProgressCallback | None = None,
) -> Generation:
    """Generate in the shared worker, awaiting the reply (no thread waits for it, so any
    number of generations can be in flight); cancelling the task cancels the generation."""
    worker = shared_worker()
    if not worker.running():
        await asyncio.to_thread(worker.start)  # spawning a process: not on the event loop
    request_id, future = worker.submit(gguf, prompt, params, on_progress)
    try:
        return generation_from(await asyncio.wrap_future(future))
    except asyncio.CancelledError:
        worker.cancel(request_id)
        raise
    finally:
        worker.finish(request_id)


# ---------------------------------------------------------------------------- the worker side


def _die_with_parent() -> None:
    """Leave as soon as the parent is gone, even in the middle of a generation. The end of
    stdin says so too, but only once a generation ends; PR_SET_PDEATHSIG is not used: it
    fires when the parent *thread* that started us exits, which is not the parent's end."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(_PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _protocol_stream() -> IO[bytes]:
    """Our stdout, kept for the protocol; fd 1 itself goes to /dev/null, so whatever the C
    library prints cannot corrupt a line."""
    stream = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the process's lifetime
    return stream


class _Serve:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.write_lock = threading.Lock()
        self.aborts: dict[int, threading.Event] = {}
        self.jobs: list[dict[str, Any]] = []
        self.jobs_ready = threading.Condition()
        self.stopping = False

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
        with self.write_lock:
            self.out.write(line)

    def read_commands(self) -> None:
        """The main thread: commands in; generations go to the generating thread."""
        for raw in sys.stdin.buffer:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            op = message.get("op")
            if op == "generate":
                self.aborts[int(message["id"])] = threading.Event()
                with self.jobs_ready:
                    self.jobs.append(message)
                    self.jobs_ready.notify()
            elif op == "cancel":
                abort = self.aborts.get(int(message.get("id", -1)))
                if abort is not None:
                    abort.set()
            elif op == "stop":
                break
        with self.jobs_ready:  # end of input: the parent is gone or asked us to stop
            self.stopping = True
            for abort in self.aborts.values():
                abort.set()
            self.jobs_ready.notify()

    def load_and_submit_forever(self) -> None:
        """One thread loads models (seconds, once) so commands keep being read meanwhile."""
        while True:
            with self.jobs_ready:
                while not self.jobs and not self.stopping:
                    self.jobs_ready.wait()
                if self.stopping:
                    return
                job = self.jobs.pop(0)
            self.run_one(job)

    def run_one(self, job: dict[str, Any]) -> None:
        """Load the model if needed and hand the generation to its decoder, which runs it
        together with the others; the reply is sent when it ends."""
        from prompt_lsp.evaluation.local_model import engine_for

        request_id = int(job["id"])
        abort = self.aborts.setdefault(request_id, threading.Event())

        def progress(count: int) -> None:
            if count % PROGRESS_EVERY == 0:
                self.emit({"id": request_id, "event": "token", "count": count})

        def reply(future: Future[Generation]) -> None:
            self.answer(request_id, future.exception() or future.result())

        try:
            engine = engine_for(Path(str(job["gguf"])))
            future = engine.submit(
                str(job["prompt"]), dict(job.get("params") or {}), abort, progress
            )
        except Exception as err:  # a bug must not leave the parent waiting
            self.answer(request_id, err)
        else:
            future.add_done_callback(reply)

    def answer(self, request_id: int, outcome: Generation | BaseException) -> None:
        self.aborts.pop(request_id, None)
        if isinstance(outcome, BaseException):
            self.emit({"id": request_id, "event": "error", "message": _error_text(outcome)})
        else:
            self.emit({"id": request_id, "event": "done", **asdict(outcome)})


def _error_text(error: BaseException) -> str:
    if isinstance(error, LocalModelError):
        return str(error)
    return f"the local model failed: {type(error).__name__}: {error}"


def serve() -> None:
    _die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    server = _Serve(_protocol_stream())
    loading = threading.Thread(
        target=server.load_and_submit_forever, name="load-and-submit", daemon=True
    )
    loading.start()
    server.read_commands()
    loading.join(5)
    from prompt_lsp.evaluation.local_model import close_engines

    close_engines()
    os._exit(0)


if __name__ == "__main__":
    serve()
