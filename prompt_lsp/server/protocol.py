"""The JSON-RPC layer, hardened: every request is answered, no message ends the session.

pygls drops some messages without a reply: params that do not fit the method's type (the
client then waits forever), a request before `initialize` or after `shutdown`, a request
sent with the wrong `jsonrpc`. `AnsweringProtocol` answers each with the error code the LSP
specification gives (-32602 InvalidParams, -32002 ServerNotInitialized, -32600
InvalidRequest). It also applies `didChange` edits as the specification's reference
implementation (vscode-languageserver-textdocument) does: a position past the end of its line
means the end of the line, one past the last line the end of the document, and a range given
end-first is read start-first.

`BoundedInput` wraps stdin for pygls' reader: a message declaring more than
MAX_MESSAGE_BYTES is refused (logged; the reader then skips to the next header), and header
lines are read at most MAX_HEADER_LINE bytes at a time, so a hostile `Content-Length` cannot
make the server allocate its claim.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

log = logging.getLogger("prompt_lsp.protocol")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_HEADER_LINE = 4096  # also keeps `int()` of the length under Python's 4,300-digit limit
_READ_CHUNK = 1 << 16
_HEADER = b"Content-Length:"
REFUSED_BODY = b"null"  # what the reader gets for a refused message: parsed, then ignored


class BoundedInput:
    """The server's stdin with bounded reads (see module docstring). pygls calls `readline`
    and `read(n)` from one reader thread."""

    def __init__(self, raw: BinaryIO, max_message: int = MAX_MESSAGE_BYTES) -> None:
        self._raw = raw
        self._max_message = max_message
        self._buffer = bytearray()
        self._skip_to_header = False

    def readline(self) -> bytes:
        if self._skip_to_header:
            self._discard_until_header()
        while True:
            end = self._buffer.find(b"\n", 0, MAX_HEADER_LINE)
            if end >= 0:
                return self._take(end + 1)
            if len(self._buffer) >= MAX_HEADER_LINE:
                return self._take(MAX_HEADER_LINE)  # too long for a header: the reader ignores it
            if not self._fill():
                return self._take(len(self._buffer))  # the end of the input (b"" at last)

    def read(self, size: int) -> bytes:
        if size > self._max_message:
            log.error(
                "Refused a message of %s bytes (the limit is %s); skipping to the next one",
                f"{size:,}",
                f"{self._max_message:,}",
            )
            self._skip_to_header = True
            return REFUSED_BODY
        while len(self._buffer) < size and self._fill():
            pass
        return self._take(min(size, len(self._buffer)))

    def _fill(self) -> bool:
        chunk = self._raw.read1(_READ_CHUNK)  # what is there, waiting only for the first byte
        self._buffer += chunk
        return bool(chunk)

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _discard_until_header(self) -> None:
        """Drop what the refused message sent (however much) up to the next header."""
        keep = len(_HEADER) - 1  # a header split across two reads
        while True:
            start = self._buffer.find(_HEADER)
            if start >= 0:
                del self._buffer[:start]
                break
            del self._buffer[: max(0, len(self._buffer) - keep)]
            if not self._fill():
                break
        self._skip_to_header = False


@dataclass(frozen=True)
class _Unreadable:
    """A message whose fields did not fit its method's types (kept to answer it)."""

    data: dict[str, Any]
    reason: str
    code: types.ErrorCodes = types.ErrorCodes.InvalidParams


_NOTIFICATIONS_BEFORE_INITIALIZE = frozenset({types.EXIT})


class AnsweringProtocol(LanguageServerProtocol):
    """LanguageServerProtocol that answers every request (see module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initialize_received = False
        self.shutdown_received = False

    # ------------------------------------------------------------ reading messages

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            message = super().structure_message(data)
        except JsonRpcException as err:
            cause = err.__cause__ or err
            return _Unreadable(data, _first_line(str(cause)) or type(cause).__name__)
        method = data.get("method") if "jsonrpc" in data else None
        if isinstance(method, str) and "id" in data and not hasattr(message, "id"):
            # pygls would structure it as the notification and drop the id: nobody would answer
            reason = f"{method} is a notification, sent with an id"
            return _Unreadable(data, reason, types.ErrorCodes.InvalidRequest)
        return message

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Unreadable):
            self._answer_unreadable(message)
            return
        if not hasattr(message, "jsonrpc"):  # `null`, a list, an object without `jsonrpc`
            self._answer_invalid(message)
            return
        method = getattr(message, "method", None)
        msg_id = getattr(message, "id", None)
        is_request = method is not None and hasattr(message, "id")
        if message.jsonrpc != self.VERSION:
            if is_request:
                self._error(msg_id, types.ErrorCodes.InvalidRequest, 'jsonrpc must be "2.0"')
            return
        if method is not None and not self._admit(method, msg_id, is_request):
            return
        super().handle_message(message)
        if method is not None and not is_request:
            self._forget_finished_notifications()

    def _forget_finished_notifications(self) -> None:
        """pygls files the future of a notification's async or threaded handler under a fresh
        id in its in-flight table and never takes it out (only replies do): one future per
        keystroke, kept for the life of the server. A done future there is one of those
        (requests leave the table when answered), so it is dropped."""
        futures = self._request_futures
        for key in [key for key, future in futures.items() if future.done()]:
            del futures[key]

    def _admit(self, method: str, msg_id: Any, is_request: bool) -> bool:
        """Whether the lifecycle allows `message` now; answers a request that it does not."""
        if method == types.EXIT:
            return True
        if not self.initialize_received:
            if method == types.INITIALIZE and is_request:
                self.initialize_received = True
                return True
            if is_request:
                self._error(
                    msg_id,
                    types.ErrorCodes.ServerNotInitialized,
                    f"{method}: the server is not initialized yet (send `initialize` first)",
                )
            else:
                log.warning("Dropped %s: the server is not initialized yet", method)
            return False
        if method == types.INITIALIZE and is_request:
            self._error(
                msg_id, types.ErrorCodes.InvalidRequest, "the server is already initialized"
            )
            return False
        if self.shutdown_received:
            if is_request:
                self._error(
                    msg_id,
                    types.ErrorCodes.InvalidRequest,
                    f"{method}: the server is shutting down (only `exit` is accepted)",
                )
            return False
        if is_request and method == types.SHUTDOWN:
            self.shutdown_received = True
        return True

    def _answer_unreadable(self, message: _Unreadable) -> None:
        data = message.data
        method, msg_id = data.get("method"), data.get("id")
        valid_id = isinstance(msg_id, (int, str)) and not isinstance(msg_id, bool)
        if not isinstance(method, str):
            if "id" in data and ("result" in data or "error" in data) and valid_id:
                # a malformed reply to our own request: fail that request rather than wait
                error = types.ResponseError(
                    types.ErrorCodes.InvalidParams, f"unreadable response: {message.reason}"
                )
                super().handle_message(types.ResponseErrorMessage(id=msg_id, error=error))
                return
            self._answer_invalid(data)
            return
        log.warning("Unreadable %s message: %s", method, message.reason)
        if "id" not in data:
            return  # a notification: nobody waits for it
        if not valid_id:
            self._error(None, types.ErrorCodes.InvalidRequest, "the id must be a number or string")
            return
        if self.get_message_type(method) is None or message.code != types.ErrorCodes.InvalidParams:
            self._error(msg_id, types.ErrorCodes.InvalidRequest, f"{method}: {message.reason}")
            return
        if not self.initialize_received and method != types.INITIALIZE:
            self._error(
                msg_id,
                types.ErrorCodes.ServerNotInitialized,
                f"{method}: the server is not initialized yet (send `initialize` first)",
            )
            return
        self._error(msg_id, types.ErrorCodes.InvalidParams, f"{method}: {message.reason}")

    def _answer_invalid(self, message: Any) -> None:
        log.warning("Ignored a message that is not JSON-RPC 2.0: %.200r", message)
        if isinstance(message, dict) and "method" in message and "id" in message:
            msg_id = message["id"]
            valid = isinstance(msg_id, (int, str)) and not isinstance(msg_id, bool)
            self._error(
                msg_id if valid else None, types.ErrorCodes.InvalidRequest, "not JSON-RPC 2.0"
            )

    def _error(self, msg_id: Any, code: types.ErrorCodes, text: str) -> None:
        self._send_response(msg_id, error=types.ResponseError(code=code, message=text))

    # ------------------------------------------------------------ document edits

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(
        self, params: types.DidChangeTextDocumentParams
    ) -> Generator[Any, Any, None]:
        """Apply the edits as the specification does (see module docstring), as one whole text
        per notification."""
        uri = params.text_document.uri
        document = self.workspace.text_documents.get(unquote(uri))  # pygls' key for it
        if document is None:
            log.warning("didChange for %s, which is not open: ignored", uri)
            return
        encoding = _encoding_name(self.workspace.position_encoding)
        text = document.source
        for change in params.content_changes:
            text = apply_change(text, change, encoding)
        self.workspace.update_text_document(
            params.text_document, types.TextDocumentContentChangeWholeDocument(text=text)
        )
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None


# ---------------------------------------------------------------- the specification's edits

_LINE_END = re.compile(r"\r\n|\r|\n")


def apply_change(text: str, change: types.TextDocumentContentChangeEvent, encoding: str) -> str:
    """`text` after one content change, positions in `encoding` units ("utf-8", "utf-16",
    "utf-32"), clamped and ordered as vscode-languageserver-textdocument does."""
    if not isinstance(change, types.TextDocumentContentChangePartial):
        return change.text
    start = offset_at(text, change.range.start, encoding)
    end = offset_at(text, change.range.end, encoding)
    if end < start:
        start, end = end, start
    return text[:start] + change.text + text[end:]


def offset_at(text: str, position: types.Position, encoding: str) -> int:
    """The index in `text` of `position`: a line past the last is the end of the text, a
    character past the end of its line the end of that line (before its line break)."""
    line_start, line = 0, 0
    for match in _LINE_END.finditer(text):
        if line == position.line:
            content = text[line_start : match.start()]
            return line_start + _index_of_unit(content, position.character, encoding)
        line_start, line = match.end(), line + 1
    if position.line > line:  # past the last line
        return len(text)
    return line_start + _index_of_unit(text[line_start:], position.character, encoding)


def _index_of_unit(line: str, units: int, encoding: str) -> int:
    """The index of the character `units` code units into `line` (the line's end if past it;
    a unit inside a character rounds down to the character's start)."""
    if encoding == "utf-32":
        return min(units, len(line))
    wide = 2 if encoding == "utf-16" else 0
    count = 0
    for index, char in enumerate(line):
        point = ord(char)
        if wide:
            size = 2 if point > 0xFFFF else 1
        else:
            size = 1 if point < 0x80 else 2 if point < 0x800 else 3 if point < 0x10000 else 4
        if count + size > units:
            return index
        count += size
    return len(line)


def _encoding_name(encoding: object) -> str:
    value = str(getattr(encoding, "value", encoding) or "utf-16")
    return value if value in ("utf-8", "utf-16", "utf-32") else "utf-16"


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0][:300]
