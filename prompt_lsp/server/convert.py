"""Between the document model (code points) and LSP types (the client's position encoding)."""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types

from prompt_lsp.checks.findings import Finding, Severity
from prompt_lsp.format.model import Position, Range


class Positions:
    """Converts positions for one document text. Lines are the document model's (no line ends)."""

    def __init__(self, lines: Sequence[str], encoding: str) -> None:
        self.lines = lines
        self.utf16 = encoding == types.PositionEncodingKind.Utf16
        self.utf8 = encoding == types.PositionEncodingKind.Utf8

    def _line(self, line: int) -> str:
        return self.lines[line] if 0 <= line < len(self.lines) else ""

    def to_client(self, pos: Position) -> types.Position:
        text = self._line(pos.line)
        column = min(pos.character, len(text))
        if text.isascii() or not (self.utf16 or self.utf8):
            return types.Position(pos.line, column)
        prefix = text[:column]
        # surrogatepass: a lone surrogate (half of a pair, as some clients send) counts as one unit
        if self.utf16:
            units = len(prefix.encode("utf-16-le", "surrogatepass")) // 2
        else:
            units = len(prefix.encode("utf-8", "surrogatepass"))
        return types.Position(pos.line, units)

    def from_client(self, pos: types.Position) -> Position:
        line = min(max(pos.line, 0), max(len(self.lines) - 1, 0))
        text = self._line(line)
        if text.isascii() or not (self.utf16 or self.utf8):
            return Position(line, min(pos.character, len(text)))
        units, column = 0, 0
        for char in text:
            step = (
                (2 if ord(char) > 0xFFFF else 1)
                if self.utf16
                else len(char.encode("utf-8", "surrogatepass"))
            )
            if units + step > pos.character:
                break
            units += step
            column += 1
        return Position(line, column)

    def range(self, rng: Range) -> types.Range:
        return types.Range(self.to_client(rng.start), self.to_client(rng.end))

    def from_client_range(self, rng: types.Range) -> Range:
        return Range(self.from_client(rng.start), self.from_client(rng.end))


_SEVERITY = {
    Severity.ERROR: types.DiagnosticSeverity.Error,
    Severity.WARNING: types.DiagnosticSeverity.Warning,
    Severity.INFORMATION: types.DiagnosticSeverity.Information,
    Severity.HINT: types.DiagnosticSeverity.Hint,
}


def to_diagnostic(finding: Finding, positions: Positions, uri: str) -> types.Diagnostic:
    related = []
    for location in finding.related:
        target_uri = location.path.as_uri() if location.path is not None else uri
        rng = (
            positions.range(location.range)
            if location.path is None
            else _plain_range(location.range)
        )
        related.append(
            types.DiagnosticRelatedInformation(
                types.Location(target_uri, rng), location.message or finding.message
            )
        )
    return types.Diagnostic(
        range=positions.range(finding.range),
        message=finding.message,
        severity=_SEVERITY[finding.severity],
        code=finding.code,
        source="prompt-lsp",
        tags=[types.DiagnosticTag.Unnecessary] if finding.unnecessary else None,
        related_information=related or None,
    )


def _plain_range(rng: Range) -> types.Range:
    """A range in a file that is not open (another file's lines are not at hand)."""
    return types.Range(
        types.Position(rng.start.line, rng.start.character),
        types.Position(rng.end.line, rng.end.character),
    )
