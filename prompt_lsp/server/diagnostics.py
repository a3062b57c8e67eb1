"""Document sync and diagnostics: checks run on open, change (debounced) and save, and again
when an examples file the prompt reads changes."""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path

from lsprotocol import types

from prompt_lsp.checks import SLOW_CODES, Finding, Severity, check_document, check_slow
from prompt_lsp.evaluation.api import load_examples
from prompt_lsp.format.examples import examples_path
from prompt_lsp.format.model import Range
from prompt_lsp.server.documents import EXAMPLE_SUFFIXES, fs_path, is_prompt_uri
from prompt_lsp.server.server import PromptServer, contained
from prompt_lsp.server.state import DocumentState

SLOW_CHECKS_IDLE_S = 0.5  # after the quick checks, how long typing must pause for the slow ones


class DiagnosticsScheduler:
    """One pending check per document (kept in its record); a newer change replaces it."""

    def __init__(self, ls: PromptServer) -> None:
        self.ls = ls
        self.documents = ls.documents

    def schedule(self, uri: str, delay_ms: int | None = None) -> None:
        if not is_prompt_uri(uri) or self.documents.text_document(uri) is None:
            return  # e.g. an open examples file: prompt checks do not apply to it
        record = self.documents.record(uri)
        if record.pending_check is not None:
            record.pending_check.cancel()
        delay = self.ls.settings.debounce_ms if delay_ms is None else delay_ms
        record.pending_check = self.ls.spawn(self._run(record.uri, delay / 1000))

    async def _run(self, uri: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        try:
            await self._check(uri, typing=delay > 0)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # e.g. publishing failed: a background task has no answer
            self.ls.log_to_client(
                f"diagnostics for {uri} failed: {err!r}\n{traceback.format_exc(limit=6)}",
                types.MessageType.Error,
            )
        finally:
            record = self.documents.existing(uri)
            if record is not None and record.pending_check is asyncio.current_task():
                record.pending_check = None

    async def _check(self, uri: str, typing: bool) -> None:
        """While typing, the quick checks publish first (the slow ones' last findings carried
        over) and the slow checks follow once typing pauses; otherwise all run at once."""
        document = self.documents.text_document(uri)
        if document is None:
            return
        state = await self.documents.parse_in_thread(uri, document.version, document.source)
        model = self.ls.settings.default_model
        record = self.documents.record(uri)
        findings = await self._findings(uri, _all_checks, state, model, slow=not typing)
        if not self.documents.is_current(uri, state.version):
            return  # the text changed while checking: the newer check publishes
        if not typing:
            record.slow_findings = [f for f in findings if f.code in SLOW_CODES]
            state.findings = findings
            self.documents.publish(state)
            return
        state.findings = findings + record.slow_findings
        self.documents.publish(state)
        await asyncio.sleep(SLOW_CHECKS_IDLE_S)
        slow = await self._findings(uri, _slow_checks, state, model)
        if not self.documents.is_current(uri, state.version):
            return
        if slow != record.slow_findings:
            record.slow_findings = slow
            state.findings = findings + slow
            self.documents.publish(state)
        self.ls.collect_when_idle()

    async def quick_findings(self, state: DocumentState) -> list[Finding]:
        """The findings for this version, checked now when the debounced check has not reached
        it yet (a request that arrives mid-typing is answered for the text it is about)."""
        if state.findings is None:
            record = self.documents.existing(state.uri)
            slow = record.slow_findings if record else []
            findings = await self._findings(
                state.uri, _all_checks, state, self.ls.settings.default_model, slow=False
            )
            if state.findings is None:
                state.findings = findings + slow
        return state.findings

    async def _findings(
        self, uri: str, check, state: DocumentState, model: str | None, **kwargs
    ) -> list[Finding]:
        try:
            return await asyncio.to_thread(check, state, model, **kwargs)
        except Exception as err:  # a checker bug: say so, keep the editor usable
            self.ls.log_to_client(
                f"checking {uri} failed: {err!r}\n{traceback.format_exc(limit=6)}",
                types.MessageType.Error,
            )
            return [
                Finding(
                    "internal-error",
                    Severity.INFORMATION,
                    Range.of(0, 0),
                    f"prompt-lsp could not check this file ({type(err).__name__}): see its log.",
                )
            ]

    def recheck_readers_of(self, changed: Path | None) -> None:
        """Re-check every open prompt whose examples file is `changed`."""
        if changed is None:
            return
        for state in self.ls.open_states():
            path = examples_path(state.doc, state.path)
            if path is not None and path.resolve() == changed.resolve():
                self.schedule(state.uri, 0)


def _all_checks(state: DocumentState, model: str | None, slow: bool) -> list[Finding]:
    examples = load_examples(state.doc, state.path)
    return check_document(state.doc, examples, state.path, default_model=model, slow=slow)


def _slow_checks(state: DocumentState, model: str | None) -> list[Finding]:
    return check_slow(state.doc, load_examples(state.doc, state.path), default_model=model)


def register(ls: PromptServer) -> DiagnosticsScheduler:
    scheduler = DiagnosticsScheduler(ls)

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @contained()
    def did_open(ls: PromptServer, params: types.DidOpenTextDocumentParams) -> None:
        uri = params.text_document.uri
        if is_prompt_uri(uri):
            scheduler.schedule(uri, 0)
        else:
            scheduler.recheck_readers_of(fs_path(uri))

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    @contained()
    def did_change(ls: PromptServer, params: types.DidChangeTextDocumentParams) -> None:
        if is_prompt_uri(params.text_document.uri):
            scheduler.schedule(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_SAVE)
    @contained()
    def did_save(ls: PromptServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        if is_prompt_uri(uri):
            scheduler.schedule(uri, 0)
        elif uri.endswith(EXAMPLE_SUFFIXES):
            scheduler.recheck_readers_of(fs_path(uri))

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @contained()
    def did_close(ls: PromptServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.documents.close(params.text_document.uri)

    @ls.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    @contained()
    def did_change_watched(ls: PromptServer, params: types.DidChangeWatchedFilesParams) -> None:
        for change in params.changes:
            if change.uri.startswith("file:"):
                scheduler.recheck_readers_of(fs_path(change.uri))

    return scheduler
