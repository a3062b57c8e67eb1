"""Line handling shared by the parsers."""

from __future__ import annotations

import bisect
import hashlib
import re

from prompt_lsp.format.model import Position

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """Split as LSP does: `\\r\\n`, `\\r` and `\\n` all end a line. Always at least one line."""
    return _LINE_BREAK.split(text)


class OffsetMap:
    """Maps offsets in a text joined with `\\n` to positions, shifted by `first_line`."""

    def __init__(self, text: str, first_line: int = 0) -> None:
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._first_line = first_line
        self._length = len(text)

    def position(self, offset: int) -> Position:
        offset = max(0, min(offset, self._length))
        line = bisect.bisect_right(self._starts, offset) - 1
        return Position(self._first_line + line, offset - self._starts[line])


def text_version(text: str) -> str:
    """A version is the SHA-256 of the file's text (a lone surrogate an editor sent hashes as
    its code point rather than failing)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def one_line(text: object, width: int = 60) -> str:
    """`text` (a value's repr when not a string) on one line of at most `width` characters."""
    if text is None or text == "":
        return ""
    flat = " ".join((text if isinstance(text, str) else repr(text)).split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"
