"""Document sync and diagnostics: checks run on open, change (debounced) and save, and again
when an examples file the prompt reads changes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types
from pygls.uris import to_fs_path

from prompt_lsp.checks import check_document
from prompt_lsp.format.examples import examples_path
from prompt_lsp.server.convert import to_diagnostic
from prompt_lsp.server.server import PromptServer, contained
from prompt_lsp.server.state import DocumentState

EXAMPLE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".yaml", ".yml")


def is_prompt(uri: str) -> bool:
    return uri.endswith((".prompt", ".prompty")) or not uri.startswith("file:")


class DiagnosticsScheduler:
    """One pending check per document; a newer change replaces the pending one."""

    def __init__(self, ls: PromptServer) -> None:
        self.ls = ls
        self.pending: dict[str, asyncio.Task] = {}
        self.extra: dict[str, list[types.Diagnostic]] = {}  # e.g. from evaluation runs

    def schedule(self, uri: str, delay_ms: int | None = None) -> None:
        previous = self.pending.pop(uri, None)
        if previous is not None:
            previous.cancel()
        delay = self.ls.settings.debounce_ms if delay_ms is None else delay_ms
        self.pending[uri] = self.ls.spawn(self._run(uri, delay / 1000))

    async def _run(self, uri: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        state = self.ls.state(uri)
        if state is None:
            return
        findings = await asyncio.to_thread(
            check_document, state.doc, state.path, default_model=self.ls.settings.default_model
        )
        if self.ls.state(uri) is not state:
            return  # the text changed while checking: the newer check publishes
        state.findings = findings
        self.publish(state)
        if self.pending.get(uri) is asyncio.current_task():
            del self.pending[uri]

    def publish(self, state: DocumentState) -> None:
        diagnostics = [to_diagnostic(f, state.positions, state.uri) for f in state.findings or []]
        diagnostics += self.extra.get(state.uri, [])
        self.ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=state.uri, version=state.version, diagnostics=diagnostics
            )
        )

    def recheck_readers_of(self, changed: Path) -> None:
        """Re-check every open prompt whose examples file is `changed`."""
        for state in self.ls.open_states():
            path = examples_path(state.doc, state.path)
            if path is not None and path.resolve() == changed.resolve():
                self.schedule(state.uri, 0)


def register(ls: PromptServer) -> DiagnosticsScheduler:
    scheduler = DiagnosticsScheduler(ls)

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @contained()
    def did_open(ls: PromptServer, params: types.DidOpenTextDocumentParams) -> None:
        uri = params.text_document.uri
        if is_prompt(uri):
            scheduler.schedule(uri, 0)
        else:
            scheduler.recheck_readers_of(Path(to_fs_path(uri)))

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    @contained()
    def did_change(ls: PromptServer, params: types.DidChangeTextDocumentParams) -> None:
        if is_prompt(params.text_document.uri):
            scheduler.schedule(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_SAVE)
    @contained()
    def did_save(ls: PromptServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        if is_prompt(uri):
            scheduler.schedule(uri, 0)
        elif uri.endswith(EXAMPLE_SUFFIXES):
            scheduler.recheck_readers_of(Path(to_fs_path(uri)))

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @contained()
    def did_close(ls: PromptServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        task = scheduler.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        ls.forget(uri)
        if is_prompt(uri):
            ls.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
            )

    @ls.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    @contained()
    def did_change_watched(ls: PromptServer, params: types.DidChangeWatchedFilesParams) -> None:
        for change in params.changes:
            if change.uri.startswith("file:"):
                scheduler.recheck_readers_of(Path(to_fs_path(change.uri)))

    return scheduler
