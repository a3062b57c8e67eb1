"""`parse(text)`: a `.prompt` file's text to its document model. Never raises."""

from __future__ import annotations

import dataclasses
import re
from typing import TypeVar

from prompt_lsp.catalog.tokens import lookup_token
from prompt_lsp.format.body import PROMPTY_ROLE_MARKER, ROLE_MARKER, find_tokens, split_messages
from prompt_lsp.format.frontmatter import parse_front_matter
from prompt_lsp.format.handlebars import analyse_handlebars_cached
from prompt_lsp.format.language import Dialect, TemplateLanguage, detect_format
from prompt_lsp.format.model import (
    JinjaBlock,
    NameUse,
    Position,
    Problem,
    PromptDocument,
    Range,
    TokenUse,
)
from prompt_lsp.format.mustache import analyse_mustache_cached
from prompt_lsp.format.settings import read_settings, without_named_schema_problems
from prompt_lsp.format.template import TemplateAnalysis, analyse_template_cached
from prompt_lsp.format.text import OffsetMap, split_lines

# Past these sizes only the front matter is analysed: a prompt is never this large on purpose,
# and the editor must stay responsive on whatever is opened.
MAX_ANALYSED_CHARS = 1_000_000
MAX_ANALYSED_LINES = 20_000
FENCE = "---"


def parse(
    text: str,
    *,
    bounded: bool = True,
    previous: PromptDocument | None = None,
    path: str | None = None,
    language_setting: str | None = None,
) -> PromptDocument:
    """The document model of `text`. `bounded` (the editor's case) skips the template analysis
    of very large files to stay responsive; the command line analyses everything. `previous`,
    the model of the text before an edit, lets an edit of plain prose skip the Jinja analysis.
    `path` (a `.prompty` file's name tells its format; partials resolve beside it) and
    `language_setting` (the workspace's `promptLsp.templateLanguage`) decide the template
    language with the file's own front matter and content (see format/language.py)."""
    lines = split_lines(text)
    doc = PromptDocument(text=text, lines=lines, path=path)
    try:
        _parse_into(doc, bounded, previous, language_setting)
    except Exception as err:  # a parser bug must not take the editor down
        doc.problems.append(
            Problem("parse-error", f"Internal parser error: {err!r}", Range.of(0, 0))
        )
    return doc


def _parse_into(
    doc: PromptDocument, bounded: bool, previous: PromptDocument | None, setting: str | None
) -> None:
    lines = doc.lines
    changed = _changed_lines(doc, previous)
    same_front_matter = previous is not None and _same_front_matter(doc, previous)
    if previous is not None and same_front_matter:
        _copy_front_matter(doc, previous)
    elif (opening := _front_matter_opening(lines)) is not None:
        _read_front_matter(doc, opening)
    doc.language_setting = setting
    if (
        previous is not None
        and same_front_matter
        and previous.language_setting == setting
        and previous.path == doc.path
        and _format_unchanged(doc, previous, changed)
    ):
        doc.template_format = previous.template_format  # the scan costs ms on a long body
    else:
        written = {str(e.path[0]): e.value for e in doc.entries if len(e.path) == 1}
        doc.template_format = detect_format(
            written,
            "\n".join(lines[doc.body_start_line :]),
            explicit=doc.settings.template,
            path=doc.path,
            setting=setting,
        )
    if doc.template_format.dialect is Dialect.DOTPROMPT:
        doc.settings = without_named_schema_problems(doc.settings, doc.schema)
    elif previous is not None and previous.template_format.dialect is Dialect.DOTPROMPT:
        # a reading copied from a Dotprompt version lacks the problems only Dotprompt forgives
        doc.settings = read_settings(doc.metadata, doc.entries, doc.schema)
    too_large = (
        len(doc.text) > MAX_ANALYSED_CHARS or len(lines) - doc.body_start_line > MAX_ANALYSED_LINES
    )
    if bounded and too_large:
        doc.truncated = True
        return
    body_lines = lines[doc.body_start_line :]
    if not body_lines:
        return
    prompty = doc.template_format.dialect is Dialect.PROMPTY
    doc.messages = split_messages(body_lines, doc.body_start_line, prompty=prompty)
    line = _reusable_edit_line(doc, previous, changed)
    if previous is not None and line is not None and (edit := _data_edit(doc, previous, line)):
        _reuse_analysis(doc, previous, edit)
        return
    if previous is not None and line is not None and _only_prose_changed(doc, previous, line):
        doc.names, doc.blocks, doc.tokens = (
            list(previous.names),
            list(previous.blocks),
            list(previous.tokens),
        )
        doc.data_spans = _moved_spans(previous.data_spans, _line_edit(doc, previous, line))
        if doc.template_format.language is TemplateLanguage.HANDLEBARS:
            # the `{{role}}` tags stay where they were; only a message's text changed
            doc.messages = [
                dataclasses.replace(m, text=_text_in(doc.lines, m.body_range).strip())
                for m in previous.messages
            ]
        return
    body = "\n".join(body_lines)
    language = doc.template_format.language
    analysis = _analyse(doc, body, bounded)
    doc.names, doc.blocks, doc.template_ok = (
        list(analysis.names),
        list(analysis.blocks),
        analysis.ok,
    )
    doc.problems.extend(analysis.problems)
    if language is TemplateLanguage.JINJA:
        doc.data_spans = list(analysis.data_spans)
    declared = set(doc.settings.tokens)
    doc.tokens = find_tokens(
        body,
        analysis.data_spans,
        OffsetMap(body, doc.body_start_line),
        lambda t: t in declared or lookup_token(t) is not None,
    )


def _analyse(doc: PromptDocument, body: str, bounded: bool) -> TemplateAnalysis:
    """The body's analysis in its own template language; a Dotprompt body also gives the
    messages (its roles are `{{role "…"}}` tags, not marker lines)."""
    language = doc.template_format.language
    if language is TemplateLanguage.HANDLEBARS:
        analysis = analyse_handlebars_cached(body, doc.body_start_line)
        doc.messages = list(analysis.messages)
        return analysis
    if language is TemplateLanguage.MUSTACHE:
        return analyse_mustache_cached(body, doc.body_start_line)
    return analyse_template_cached(body, doc.body_start_line, bounded)


def _changed_lines(doc: PromptDocument, previous: PromptDocument | None) -> list[int] | None:
    """The lines the edit from `previous` changed; None when it added or removed lines."""
    if previous is None or len(previous.lines) != len(doc.lines):
        return None
    return [n for n, (a, b) in enumerate(zip(doc.lines, previous.lines, strict=True)) if a != b]


def _format_unchanged(
    doc: PromptDocument, previous: PromptDocument, changed: list[int] | None
) -> bool:
    """Whether the edit from `previous` changed one body line that held, and holds, no template
    syntax nor role marker: then what decides the template language is as it was."""
    if changed is None or len(changed) > 1:
        return False
    return not any(
        _STRUCTURAL.search(text) or ROLE_MARKER.match(text) or PROMPTY_ROLE_MARKER.match(text)
        for line in changed
        for text in (doc.lines[line], previous.lines[line])
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


def _reusable_edit_line(
    doc: PromptDocument, previous: PromptDocument | None, changed: list[int] | None
) -> int | None:
    """The one body line the edit from `previous` changed, when `previous` was analysed in
    full and without error in the same format, with the body starting where it does now: the
    edits whose analysis may be kept (`_data_edit`, `_only_prose_changed`)."""
    if (
        previous is None
        or changed is None
        or len(changed) != 1
        or changed[0] < doc.body_start_line
        or previous.truncated
        or previous.template_format != doc.template_format
        or not previous.template_ok
        or previous.body_start_line != doc.body_start_line
    ):
        return None
    return changed[0]


def _only_prose_changed(doc: PromptDocument, previous: PromptDocument, line: int) -> bool:
    """Whether the changed `line` held, and holds, only prose: then every Jinja name, block and
    special token stays where it was (it sits on other lines) and the template analysis, the
    costly part of a parse, can be kept."""
    return not any(
        _STRUCTURAL.search(text) or ROLE_MARKER.match(text) or PROMPTY_ROLE_MARKER.match(text)
        for text in (doc.lines[line], previous.lines[line])
    )


_Ranged = TypeVar("_Ranged", NameUse, JinjaBlock, TokenUse)

# Characters that may make or unmake Jinja syntax next to them (`{%`, `#}`, …).
_DELIMITING = re.compile(r"[{}<>\[\]%#]")


@dataclasses.dataclass(frozen=True)
class _DataEdit:
    """An edit of one line inside a plain-text span of the template: the text from `column`
    (`removed` characters long before the edit) changed length by `delta`."""

    line: int
    column: int
    removed: int
    delta: int
    offset: int  # of `column` in the previous body


def _data_edit(doc: PromptDocument, previous: PromptDocument, line: int) -> _DataEdit | None:
    """The edit of `line` from `previous`, when it lies inside plain text of a Jinja body,
    touching no special token and making no Jinja syntax with its neighbours: then the
    template's names, blocks and tokens are those of `previous`, shifted along that line."""
    if not previous.data_spans or doc.template_format.language is not TemplateLanguage.JINJA:
        return None
    old, new = previous.lines[line], doc.lines[line]
    if any(m.match(t) for m in (ROLE_MARKER, PROMPTY_ROLE_MARKER) for t in (old, new)):
        return None
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end = 0  # characters kept at the end
    while end < min(len(old), len(new)) - start and old[-1 - end] == new[-1 - end]:
        end += 1
    removed, inserted = old[start : len(old) - end], new[start : len(new) - end]
    neighbours = old[start - 1 : start] + old[len(old) - end : len(old) - end + 1]
    if _DELIMITING.search(removed + inserted + neighbours):
        return None
    stop = start + len(removed)
    if any(
        t.range.start.line <= line <= t.range.end.line
        and (t.range.start.line < line or t.range.start.character <= stop)
        and (t.range.end.line > line or t.range.end.character >= start)
        for t in previous.tokens
    ):
        return None  # next to a special token or an angle tag: it may be another one now
    offset = _body_offset(previous, doc.body_start_line, line) + start
    if not any(s <= offset and offset + len(removed) <= e for s, e in previous.data_spans):
        return None
    return _DataEdit(line, start, len(removed), len(inserted) - len(removed), offset)


def _reuse_analysis(doc: PromptDocument, previous: PromptDocument, edit: _DataEdit) -> None:
    """`previous`'s analysis, moved by the edit (see `_data_edit`)."""

    def moved(rng: Range) -> Range:
        def position(at: Position) -> Position:
            if at.line != edit.line or at.character < edit.column + edit.removed:
                return at
            return Position(at.line, at.character + edit.delta)

        return Range(position(rng.start), position(rng.end))

    def shifted(items: list[_Ranged]) -> list[_Ranged]:
        return [
            dataclasses.replace(item, range=moved(item.range))
            if edit.line in (item.range.start.line, item.range.end.line)
            else item
            for item in items
        ]

    doc.names, doc.blocks, doc.tokens = (
        shifted(previous.names),
        shifted(previous.blocks),
        shifted(previous.tokens),
    )
    doc.data_spans = _moved_spans(previous.data_spans, edit)


def _line_edit(doc: PromptDocument, previous: PromptDocument, line: int) -> _DataEdit:
    """The changed `line` (`_only_prose_changed`) as an edit of the whole line."""
    offset = _body_offset(previous, doc.body_start_line, line)
    old = len(previous.lines[line])
    return _DataEdit(line, 0, old, len(doc.lines[line]) - old, offset)


def _body_offset(doc: PromptDocument, body_start: int, line: int) -> int:
    """Where `line` starts in `doc`'s template body (the text after the front matter)."""
    return sum(len(text) + 1 for text in doc.lines[body_start:line])


def _moved_spans(spans: list[tuple[int, int]], edit: _DataEdit) -> list[tuple[int, int]]:
    """Plain-text spans after `edit`, which lies inside one of them."""
    stop = edit.offset + edit.removed
    return [
        (s if s <= edit.offset else s + edit.delta, e if e < stop else e + edit.delta)
        for s, e in spans
    ]


def _text_in(lines: list[str], rng: Range) -> str:
    if rng.start.line == rng.end.line:
        return lines[rng.start.line][rng.start.character : rng.end.character]
    middle = lines[rng.start.line + 1 : rng.end.line]
    first = lines[rng.start.line][rng.start.character :]
    return "\n".join([first, *middle, lines[rng.end.line][: rng.end.character]])


def _front_matter_opening(lines: list[str]) -> int | None:
    """The line of the opening `---`: the first line (a byte order mark may precede it) or, as
    Dotprompt reads a file, after `#` comment lines and blank lines (a licence header)."""
    if lines[0].lstrip("\ufeff").rstrip() == FENCE:
        return 0
    if not lines[0].lstrip("\ufeff").startswith("#"):
        return None
    for index, line in enumerate(lines[:200]):
        if line.rstrip() == FENCE:
            return index
        if line.strip() and not line.lstrip("\ufeff").startswith("#"):
            return None
    return None


def _read_front_matter(doc: PromptDocument, opening: int) -> None:
    lines = doc.lines
    close = next(
        (i for i in range(opening + 1, len(lines)) if lines[i].rstrip() in (FENCE, "...")), None
    )
    doc.has_front_matter = True
    if close is None:
        doc.problems.append(
            Problem(
                "yaml-syntax",
                "Front matter is not closed: add a line `---` after it.",
                Range.of(opening, 0, end=len(lines[opening])),
            )
        )
        close = len(lines)
        doc.body_start_line = len(lines)
    else:
        doc.body_start_line = close + 1
        doc.front_matter_closed = True
    end_line = min(close, len(lines) - 1)
    doc.front_matter_range = Range(Position(opening, 0), Position(end_line, len(lines[end_line])))
    front = parse_front_matter("\n".join(lines[opening + 1 : close]), first_line=opening + 1)
    doc.metadata = front.metadata
    doc.entries = front.entries
    doc.schema = front.schema
    doc.has_schema = front.has_schema
    doc.defaults = front.defaults
    doc.default_entries = front.default_entries
    doc.problems.extend(front.problems)
    doc.settings = read_settings(front.metadata, front.entries, front.schema)
