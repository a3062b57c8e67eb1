"""The document model of a `.prompt` file: every part with its exact source range.

Positions are 0-based (line, character) where character counts Python code points in that
line. The server converts them to the client's position encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prompt_lsp.format.settings import PromptSettings

from prompt_lsp.format.language import DEFAULT_FORMAT, TemplateFormat


@dataclass(frozen=True, order=True)
class Position:
    line: int
    character: int


@dataclass(frozen=True)
class Range:
    start: Position
    end: Position

    @staticmethod
    def of(line: int, start: int, end_line: int | None = None, end: int | None = None) -> Range:
        """Range from numbers; a one-line range when `end_line` is omitted."""
        if end_line is None:
            return Range(Position(line, start), Position(line, start if end is None else end))
        return Range(Position(line, start), Position(end_line, end if end is not None else 0))

    def contains(self, pos: Position) -> bool:
        return self.start <= pos <= self.end


@dataclass(frozen=True)
class Problem:
    """Something the parser could not make sense of (reported as a diagnostic by checks/)."""

    code: str  # "yaml-syntax" | "template-syntax"
    message: str
    range: Range


@dataclass(frozen=True)
class Entry:
    """One front matter key with its value. `path` is the key path from the top, list items
    as ints: ("config", "temperature"), ("metrics", 1, "name")."""

    path: tuple[str | int, ...]
    key_range: Range | None  # None for list items
    value_range: Range
    value: Any


@dataclass(frozen=True)
class SchemaField:
    """One declared input variable (Picoschema, or a Prompty `inputs:` entry)."""

    name: str
    type: str  # string | integer | number | boolean | array | object | any | enum | ...
    description: str
    optional: bool
    range: Range  # the name, where it is declared
    type_range: Range | None = None
    raw_type: str = ""  # the type as written


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    marker_range: Range | None  # None for text before the first marker
    body_range: Range  # from the line after the marker to the end of the last line
    text: str


@dataclass(frozen=True)
class NameUse:
    """A name in the template: a variable reference, a local (loop variable, `this`, a block
    parameter), a Jinja filter, test or tag, a Handlebars helper, or a partial's name."""

    kind: str  # "variable" | "local" | "filter" | "test" | "tag" | "helper" | "partial"
    name: str  # root name for variables (`user` in `user.name`)
    range: Range


@dataclass(frozen=True)
class TokenUse:
    """A special token or an angle tag (`<article>`, `</article>`) in the template text."""

    text: str
    range: Range
    known: bool  # a special token of a family, the seeds or the file's `tokens:`


@dataclass(frozen=True)
class JinjaBlock:
    """A `{% tag %} … {% endtag %}` pair (Handlebars `{{#tag}} … {{/tag}}`), for folding."""

    tag: str
    range: Range


@dataclass
class PromptDocument:
    """Everything known about one `.prompt` file. Build with `format.parse`."""

    text: str
    lines: list[str]
    has_front_matter: bool = False
    front_matter_range: Range | None = None  # from the opening `---` to the closing one
    front_matter_closed: bool = False  # the closing `---` is there
    body_start_line: int = 0  # first line of the template body
    metadata: dict[str, Any] = field(default_factory=dict)  # raw, aliases resolved: read `settings`
    settings: PromptSettings = field(default_factory=lambda: _no_settings())  # typed front matter
    entries: list[Entry] = field(default_factory=list)
    schema: list[SchemaField] = field(default_factory=list)
    has_schema: bool = False  # an input schema is declared (even an empty one)
    defaults: dict[str, Any] = field(default_factory=dict)
    default_entries: dict[str, Entry] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    names: list[NameUse] = field(default_factory=list)
    blocks: list[JinjaBlock] = field(default_factory=list)
    tokens: list[TokenUse] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    template_ok: bool = True  # the template language's parser read the body without error
    # Jinja only: the body's plain-text spans (offsets in `body`), for reusing the analysis
    # across an edit inside plain text (see `parser._data_edit`)
    data_spans: list[tuple[int, int]] = field(default_factory=list)
    truncated: bool = False  # the text was too large to analyse fully
    template_format: TemplateFormat = DEFAULT_FORMAT  # dialect and template language
    path: str | None = None  # the file's path, when known (partials resolve beside it)
    language_setting: str | None = None  # the workspace's template language it was parsed with

    @property
    def body(self) -> str:
        return "\n".join(self.lines[self.body_start_line :])

    @property
    def variables(self) -> list[NameUse]:
        return [u for u in self.names if u.kind == "variable"]

    @property
    def partials(self) -> list[NameUse]:
        return [u for u in self.names if u.kind == "partial"]

    @property
    def used_variable_names(self) -> set[str]:
        return {u.name for u in self.names if u.kind == "variable"}

    @property
    def declared_names(self) -> set[str]:
        return {f.name for f in self.schema} | set(self.defaults)

    def entry(self, *path: str | int) -> Entry | None:
        for e in self.entries:
            if e.path == path:
                return e
        return None

    def schema_field(self, name: str) -> SchemaField | None:
        return next((f for f in self.schema if f.name == name), None)

    @property
    def model_id(self) -> str | None:
        return self.settings.model

    @property
    def name(self) -> str | None:
        return self.settings.name

    def end_position(self) -> Position:
        return Position(len(self.lines) - 1, len(self.lines[-1]) if self.lines else 0)


def _no_settings() -> PromptSettings:
    from prompt_lsp.format.settings import PromptSettings

    return PromptSettings()
