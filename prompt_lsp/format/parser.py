"""`parse(text)`: a `.prompt` file's text to its document model. Never raises."""

from __future__ import annotations

import re

from prompt_lsp.catalog.tokens import lookup_token
from prompt_lsp.format.body import ROLE_MARKER, find_tokens, split_messages
from prompt_lsp.format.frontmatter import parse_front_matter
from prompt_lsp.format.model import Position, Problem, PromptDocument, Range
from prompt_lsp.format.settings import read_settings
from prompt_lsp.format.template import analyse_template_cached
from prompt_lsp.format.text import OffsetMap, split_lines

# Past these sizes only the front matter is analysed: a prompt is never this large on purpose,
# and the editor must stay responsive on whatever is opened.
MAX_ANALYSED_CHARS = 1_000_000
MAX_ANALYSED_LINES = 20_000
FENCE = "---"


def parse(
    text: str, *, bounded: bool = True, previous: PromptDocument | None = None
) -> PromptDocument:
    """The document model of `text`. `bounded` (the editor's case) skips the template analysis
    of very large files to stay responsive; the command line analyses everything. `previous`,
    the model of the text before an edit, lets an edit of plain prose skip the Jinja analysis."""
    lines = split_lines(text)
    doc = PromptDocument(text=text, lines=lines)
    try:
        _parse_into(doc, bounded, previous)
    except Exception as err:  # a parser bug must not take the editor down
        doc.problems.append(
            Problem("parse-error", f"Internal parser error: {err!r}", Range.of(0, 0))
        )
    return doc


def _parse_into(doc: PromptDocument, bounded: bool, previous: PromptDocument | None) -> None:
    lines = doc.lines
    if previous is not None and _same_front_matter(doc, previous):
        _copy_front_matter(doc, previous)
    elif lines[0].lstrip("\ufeff").rstrip() == FENCE:  # a byte order mark may precede it
        _read_front_matter(doc)
    too_large = (
        len(doc.text) > MAX_ANALYSED_CHARS or len(lines) - doc.body_start_line > MAX_ANALYSED_LINES
    )
    if bounded and too_large:
        doc.truncated = True
        return
    body_lines = lines[doc.body_start_line :]
    if not body_lines:
        return
    doc.messages = split_messages(body_lines, doc.body_start_line)
    if previous is not None and _only_prose_changed(doc, previous):
        doc.names, doc.blocks, doc.tokens = (
            list(previous.names),
            list(previous.blocks),
            list(previous.tokens),
        )
        return
    body = "\n".join(body_lines)
    analysis = analyse_template_cached(body, doc.body_start_line, bounded)
    doc.names, doc.blocks, doc.template_ok = (
        list(analysis.names),
        list(analysis.blocks),
        analysis.ok,
    )
    doc.problems.extend(analysis.problems)
    declared = set(doc.settings.tokens)
    doc.tokens = find_tokens(
        body,
        analysis.data_spans,
        OffsetMap(body, doc.body_start_line),
        lambda t: t in declared or lookup_token(t) is not None,
    )


def _same_front_matter(doc: PromptDocument, previous: PromptDocument) -> bool:
    """Whether the edit from `previous` left the (closed) front matter as it was: its reading
    is then the same, and YAML, the costly part of a body edit's parse, can be skipped."""
    end = previous.body_start_line
    return (
        previous.has_front_matter
        and previous.front_matter_closed
        and len(doc.lines) >= end
        and doc.lines[:end] == previous.lines[:end]
    )


def _copy_front_matter(doc: PromptDocument, previous: PromptDocument) -> None:
    for name in (
        "has_front_matter",
        "front_matter_range",
        "front_matter_closed",
        "body_start_line",
        "metadata",
        "entries",
        "schema",
        "has_schema",
        "defaults",
        "default_entries",
        "settings",
    ):
        setattr(doc, name, getattr(previous, name))
    doc.problems.extend(p for p in previous.problems if p.range.start.line < doc.body_start_line)


# Characters that can start or end Jinja syntax or a special token.
_STRUCTURAL = re.compile(r"[{}<>\[\]]")


def _only_prose_changed(doc: PromptDocument, previous: PromptDocument) -> bool:
    """Whether the edit from `previous` changed one body line that held, and holds, only prose:
    then every Jinja name, block and special token stays where it was (it sits on other lines)
    and the template analysis, the costly part of a parse, can be kept."""
    if (
        previous.truncated
        or not previous.template_ok
        or previous.body_start_line != doc.body_start_line
        or len(previous.lines) != len(doc.lines)
    ):
        return False
    changed = [
        n for n, (new, old) in enumerate(zip(doc.lines, previous.lines, strict=True)) if new != old
    ]
    if len(changed) != 1 or changed[0] < doc.body_start_line:
        return False
    line = changed[0]
    return not any(
        _STRUCTURAL.search(text) or ROLE_MARKER.match(text)
        for text in (doc.lines[line], previous.lines[line])
    )


def _read_front_matter(doc: PromptDocument) -> None:
    lines = doc.lines
    close = next((i for i in range(1, len(lines)) if lines[i].rstrip() in (FENCE, "...")), None)
    doc.has_front_matter = True
    if close is None:
        doc.problems.append(
            Problem(
                "yaml-syntax",
                "Front matter is not closed: add a line `---` after it.",
                Range.of(0, 0, end=len(lines[0])),
            )
        )
        close = len(lines)
        doc.body_start_line = len(lines)
    else:
        doc.body_start_line = close + 1
        doc.front_matter_closed = True
    end_line = min(close, len(lines) - 1)
    doc.front_matter_range = Range(Position(0, 0), Position(end_line, len(lines[end_line])))
    front = parse_front_matter("\n".join(lines[1:close]), first_line=1)
    doc.metadata = front.metadata
    doc.entries = front.entries
    doc.schema = front.schema
    doc.has_schema = front.has_schema
    doc.defaults = front.defaults
    doc.default_entries = front.default_entries
    doc.problems.extend(front.problems)
    doc.settings = read_settings(front.metadata, front.entries, front.schema)
