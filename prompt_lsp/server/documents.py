"""The one owner of per-document state: parsed versions, findings kept per source, evaluation
diagnostics, pending checks and running evaluations. Everything about a document is dropped when
it closes, and every lookup goes through a normalised URI.

pygls keys its open documents by the unquoted URI (`file:///c:/x.prompt` for the
`file:///c%3A/x.prompt` VS Code sends on Windows, `My Prompts` for `My%20Prompts`); `document_key`
is that same spelling, so a percent-encoded URI finds its document. The URI the client wrote is
kept for everything sent back to it.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from lsprotocol import types
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from prompt_lsp.checks.findings import Finding
from prompt_lsp.format import PromptDocument, parse
from prompt_lsp.format.examples import FORMATS as EXAMPLE_FORMATS
from prompt_lsp.format.text import text_version
from prompt_lsp.server.convert import Positions, to_diagnostic
from prompt_lsp.server.jobs import Job
from prompt_lsp.server.state import DocumentState

if TYPE_CHECKING:
    from prompt_lsp.evaluation.api import RunReport
    from prompt_lsp.server.server import PromptServer

PROMPT_SUFFIXES = (".prompt", ".prompty")
PARSE_WAIT_S = 5.0  # a request waits at most this long for a parse already running
EXAMPLE_SUFFIXES = tuple(EXAMPLE_FORMATS)


def document_key(uri: str) -> str:
    """How a document is known here and by pygls: its URI, percent-decoded."""
    return unquote(uri)


def is_prompt_uri(uri: str) -> bool:
    """A `.prompt`/`.prompty` file, or an unsaved buffer the client says is a prompt."""
    return uri.endswith(PROMPT_SUFFIXES) or not uri.startswith("file:")


def fs_path(uri: str) -> Path | None:
    """The file a `file:` URI names (percent-encoding and `c%3A` drive letters decoded)."""
    if not uri.startswith("file:"):
        return None
    path = to_fs_path(uri)
    return Path(path) if path else None


# ---------------------------------------------------------------- per-document records


@dataclass
class Evaluation(Job):
    """Evaluations of one prompt document: the running one, and the last finished report."""

    done: int = 0
    total: int = 0
    failed: int = 0
    report: RunReport | None = None  # the last finished run (any version of the text)


@dataclass
class EvaluationNotes:
    """Diagnostics an evaluation left, valid only for the text it evaluated."""

    version: str  # text hash of the evaluated text
    in_prompt: list[types.Diagnostic]
    examples_uri: str | None = None  # where the per-example ones went
    in_examples: list[types.Diagnostic] = field(default_factory=list)


@dataclass
class DocumentRecord:
    uri: str  # as the client wrote it: used for everything sent back
    state: DocumentState | None = None  # the latest version parsed
    slow_findings: list[Finding] = field(default_factory=list)  # last slow checks' findings
    pending_check: asyncio.Task | None = None
    evaluation: Evaluation = field(default_factory=Evaluation)
    notes: EvaluationNotes | None = None
    published_version: int | None = None  # the document version last published


@dataclass
class _Parse:
    """A parse running in a worker thread, which a request for the same version waits for
    rather than parsing the text a second time."""

    text: str
    done: threading.Event = field(default_factory=threading.Event)
    doc: PromptDocument | None = None


class Documents:
    """Per-document state of one server. Documents are keyed by `document_key`."""

    def __init__(self, ls: PromptServer) -> None:
        self.ls = ls
        self._records: dict[str, DocumentRecord] = {}
        self._parsing: dict[tuple[str, int | None], _Parse] = {}

    # ------------------------------------------------------------ lookup

    def text_document(self, uri: str) -> TextDocument | None:
        return self.ls.workspace.text_documents.get(document_key(uri))

    def record(self, uri: str) -> DocumentRecord:
        key = document_key(uri)
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = DocumentRecord(uri)
        return record

    def existing(self, uri: str) -> DocumentRecord | None:
        return self._records.get(document_key(uri))

    def open_uris(self) -> list[str]:
        """The URIs of open documents, spelt as the client opened them."""
        uris = []
        for key in list(self.ls.workspace.text_documents):
            record = self._records.get(key)
            uris.append(record.uri if record else key)
        return uris

    # ------------------------------------------------------------ parsed versions

    def state(self, uri: str) -> DocumentState | None:
        """The parsed state of an open prompt at the version the client sent last, parsed now
        if no parse has reached it yet (an edit of plain prose reuses the previous analysis)."""
        document = self.text_document(uri)
        if document is None or not is_prompt_uri(uri):
            return None
        text = document.source
        known = self.parsed(uri, document.version, text)
        if known is not None:
            return known
        running = self._parsing.get((document_key(uri), document.version))
        if running is not None and running.text == text and running.done.wait(PARSE_WAIT_S):
            doc = running.doc
        else:
            doc = None
        if doc is None:
            doc = self.parse(uri, text, self.previous_doc(uri))
        return self.remember(uri, document.version, doc)

    async def parse_in_thread(self, uri: str, version: int | None, text: str) -> DocumentState:
        """The state of this version, parsed in a worker thread (analysing a long template
        takes tens of milliseconds, and requests are answered meanwhile); a request for the
        same version that arrives meanwhile waits for this parse instead of repeating it."""
        if (state := self.parsed(uri, version, text)) is not None:
            return state
        key = (document_key(uri), version)
        running = self._parsing[key] = _Parse(text)
        previous = self.previous_doc(uri)

        def work() -> PromptDocument:
            try:
                running.doc = self.parse(uri, text, previous)
                return running.doc
            finally:
                running.done.set()

        try:
            doc = await asyncio.to_thread(work)
        finally:
            if self._parsing.get(key) is running:
                del self._parsing[key]
        if (state := self.parsed(uri, version, text)) is not None:
            return state  # a request parsed it meanwhile: one state per version
        return self.remember(uri, version, doc)

    def parse(self, uri: str, text: str, previous: PromptDocument | None) -> PromptDocument:
        """`text` of the document `uri` parsed: its path tells a `.prompty` file and where its
        partials are; the workspace setting may name the template language."""
        path = fs_path(uri)
        return parse(
            text,
            previous=previous,
            path=str(path) if path else None,
            language_setting=self.ls.settings.template_language,
        )

    def parsed(self, uri: str, version: int | None, text: str) -> DocumentState | None:
        """The state already parsed for exactly this version and text, if any."""
        record = self.existing(uri)
        state = record.state if record else None
        if (
            state is not None
            and state.version == version
            and state.doc.text == text
            and state.caches.get("template_language") == self.ls.settings.template_language
        ):
            return state
        return None

    def previous_doc(self, uri: str) -> PromptDocument | None:
        """The model of the last version parsed (to reuse its analysis when the edit allows)."""
        record = self.existing(uri)
        return record.state.doc if record and record.state else None

    def remember(self, uri: str, version: int | None, doc: PromptDocument) -> DocumentState:
        """A state for `doc`, kept as the document's while the document is at `version`."""
        record = self.record(uri)
        state = DocumentState(
            record.uri, version, doc, fs_path(uri), Positions(doc.lines, self.ls.encoding)
        )
        state.caches["template_language"] = self.ls.settings.template_language
        if self.is_current(uri, version):
            record.state = state
        return state

    def is_current(self, uri: str, version: int | None) -> bool:
        document = self.text_document(uri)
        return document is not None and document.version == version

    def open_states(self) -> list[DocumentState]:
        return [s for uri in self.open_uris() if (s := self.state(uri)) is not None]

    # ------------------------------------------------------------ diagnostics

    def publish(self, state: DocumentState) -> bool:
        """Publish the diagnostics of `state`: its checks' findings, and the last evaluation's
        notes when they were made for this very text. Nothing is published for a superseded
        version (a newer one publishes its own). Returns whether it published."""
        record = self.existing(state.uri)
        if record is None or not self.is_current(state.uri, state.version):
            return False
        if (
            record.published_version is not None
            and state.version is not None
            and state.version < record.published_version
        ):
            return False
        diagnostics = [to_diagnostic(f, state.positions, record.uri) for f in state.findings or []]
        notes = record.notes
        if notes is not None and notes.version == text_version(state.doc.text):
            diagnostics += notes.in_prompt
        self._publish(record.uri, diagnostics, state.version)
        record.published_version = state.version
        self._publish_examples_notes(record, state)
        return True

    def set_notes(self, uri: str, notes: EvaluationNotes) -> None:
        """Replace an evaluation's diagnostics; clear the examples file's old ones."""
        record = self.record(uri)
        old = record.notes
        record.notes = notes
        if old is not None and old.examples_uri and old.examples_uri != notes.examples_uri:
            self._publish(old.examples_uri, [])
        state = record.state
        if state is not None and state.findings is not None:
            self.publish(state)

    def _publish_examples_notes(self, record: DocumentRecord, state: DocumentState) -> None:
        """Per-example notes show while the prompt's text is the one evaluated."""
        notes = record.notes
        if notes is None or notes.examples_uri is None:
            return
        valid = notes.version == text_version(state.doc.text)
        self._publish(notes.examples_uri, notes.in_examples if valid else [])

    def _publish(self, uri: str, diagnostics: list[types.Diagnostic], version: int | None = None):
        self.ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, version=version, diagnostics=diagnostics)
        )

    # ------------------------------------------------------------ closing

    def close(self, uri: str) -> None:
        """Drop everything about the document: pending checks, a running evaluation, its
        parsed versions and every diagnostic it published."""
        record = self._records.pop(document_key(uri), None)
        if record is None:
            return
        if record.pending_check is not None:
            record.pending_check.cancel()
        if record.evaluation.running:
            record.evaluation.cancel.set()
        if record.notes is not None and record.notes.examples_uri:
            self._publish(record.notes.examples_uri, [])
        if is_prompt_uri(uri):
            self._publish(record.uri, [])
