"""Diagnostics as plain data: what the checks find, where, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from prompt_lsp.format.model import Range


class Severity(IntEnum):
    """Numbered as in LSP."""

    ERROR = 1
    WARNING = 2
    INFORMATION = 3
    HINT = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class TextEdit:
    range: Range
    new_text: str


@dataclass(frozen=True)
class Fix:
    """A repair: text edits in the prompt, or a file to create."""

    title: str
    edits: tuple[TextEdit, ...] = ()
    create_file: Path | None = None
    file_content: str = ""
    preferred: bool = False


@dataclass(frozen=True)
class Location:
    """A place in another file (the examples file), or in the prompt when `path` is None."""

    path: Path | None
    range: Range
    message: str = ""


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    range: Range  # always in the prompt file
    message: str
    fixes: tuple[Fix, ...] = ()
    related: tuple[Location, ...] = ()
    unnecessary: bool = False  # the editor greys it out
    elsewhere: Location | None = None  # the finding really is in another file (the examples file)
