"""The language server object: documents, settings, logging and error containment."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import inspect
import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from prompt_lsp import __version__
from prompt_lsp.server.documents import Documents
from prompt_lsp.server.protocol import AnsweringProtocol
from prompt_lsp.server.state import DocumentState, Settings

log = logging.getLogger("prompt_lsp")

F = TypeVar("F", bound=Callable[..., Any])
IDLE_COLLECTION_EVERY_S = 5.0


class PromptServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("prompt-lsp", __version__, protocol_cls=AnsweringProtocol)
        self.settings = Settings()
        self.documents = Documents(self)
        self.initialization_options: Any = None
        self.background: set[asyncio.Task] = set()  # keeps fire-and-forget tasks alive
        self._last_collection = 0.0
        # Extra hover answers tried before the built-in ones (the evaluation comparison); each
        # is called as provider(ls, state, position) in a worker thread and returns markdown.
        self.hover_providers: list[Callable[..., str | None]] = []
        # Feature modules that add code lenses / code actions to a prompt document: called as
        # provider(state) and provider(state, params) in a worker thread.
        self.lens_providers: list[Callable[..., list[types.CodeLens]]] = []
        self.action_providers: list[Callable[..., list[types.CodeAction]]] = []

    # ------------------------------------------------------------ documents

    @property
    def encoding(self) -> str:
        encoding = self.workspace.position_encoding or types.PositionEncodingKind.Utf16
        # pygls hands over the enum when the client lists no encodings: str() of it would be
        # "PositionEncodingKind.Utf16", which Positions takes for code points.
        return str(getattr(encoding, "value", encoding))

    def state(self, uri: str) -> DocumentState | None:
        """The parsed state of an open prompt at the version the client sent last."""
        return self.documents.state(uri)

    def open_states(self) -> list[DocumentState]:
        return self.documents.open_states()

    def workspace_root(self, path: Path | None) -> Path | None:
        """The workspace folder holding `path` (the deepest), else the root the client gave."""
        folders = [Path(to_fs_path(f.uri)) for f in self.workspace.folders.values()]
        if self.workspace.root_path:
            folders.append(Path(self.workspace.root_path))
        if path is not None:
            holding = [f for f in folders if f in path.parents]
            if holding:
                return max(holding, key=lambda f: len(f.parts))
        return None

    def refresh_views(self, inlay_hints: bool = True) -> None:
        """Ask the client to request code lenses (and inlay hints) again, where it can."""
        workspace = self.client_capabilities.workspace
        if workspace and workspace.code_lens and workspace.code_lens.refresh_support:
            self.spawn(self.workspace_code_lens_refresh_async(None))
        if (
            inlay_hints
            and workspace
            and workspace.inlay_hint
            and workspace.inlay_hint.refresh_support
        ):
            self.spawn(self.workspace_inlay_hint_refresh_async(None))

    # ------------------------------------------------------------ background work

    def collect_when_idle(self) -> None:
        """A full garbage collection, at most every few seconds, while nobody types (see
        `quiet_garbage_collection`)."""
        now = time.monotonic()
        if now - self._last_collection >= IDLE_COLLECTION_EVERY_S:
            self._last_collection = now
            gc.collect()

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    # ------------------------------------------------------------ messages

    def log_to_client(self, message: str, kind: types.MessageType = types.MessageType.Log) -> None:
        log.info(message)
        with contextlib.suppress(Exception):  # no client yet
            self.window_log_message(types.LogMessageParams(type=kind, message=message))

    def show_to_client(
        self, message: str, kind: types.MessageType = types.MessageType.Info
    ) -> None:
        try:
            self.window_show_message(types.ShowMessageParams(type=kind, message=message))
        except Exception:
            log.info(message)


def contained(default: Any = None) -> Callable[[F], F]:
    """A handler that fails logs why through window/logMessage and answers `default`:
    one bad request never takes the server down."""

    def decorate(handler: F) -> F:
        def report(ls: PromptServer, err: Exception) -> Any:
            detail = "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=6))
            ls.log_to_client(
                f"{handler.__name__} failed: {err!r}\n{detail}", types.MessageType.Error
            )
            return default() if callable(default) else default

        if inspect.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def run_async(ls: PromptServer, *args: Any) -> Any:
                try:
                    return await handler(ls, *args)
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    return report(ls, err)

            return run_async  # type: ignore[return-value]

        @functools.wraps(handler)
        def run(ls: PromptServer, *args: Any) -> Any:
            try:
                return handler(ls, *args)
            except Exception as err:
                return report(ls, err)

        return run  # type: ignore[return-value]

    return decorate
