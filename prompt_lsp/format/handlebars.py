"""Handlebars (Dotprompt) analysis of a template body, in the same shape as the Jinja analysis.

Whether the body is valid is decided by Dotprompt's own Handlebars engine
(`dotpromptz_handlebars`); its tree has no source positions, so the tags are also scanned here,
the way that engine scans them, to give every name, block, partial and role a range and to say
where an error is.

Names: `{{name}}` and `{{a.b}}` at the top level read the input (a variable); inside
`{{#each}}`/`{{#with}}` (or a section `{{#list}}`) they read the current item (local), unless
they climb out with `../` or start at `@root`. `this`, `.`, `@index`, `@key`, `@first`, `@last`
and block parameters (`as |item i|`) are local; helpers are helpers.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from prompt_lsp.format.model import JinjaBlock, Message, NameUse, Position, Problem, Range
from prompt_lsp.format.template import TemplateAnalysis
from prompt_lsp.format.text import OffsetMap

# Dotprompt's helpers (dotpromptz BUILTIN_HELPERS) and Handlebars' own.
DOTPROMPT_HELPERS = {
    "role": 'Starts a message with this role: `{{role "system"}}`, `"user"`, `"model"`.',
    "history": "Inserts the conversation history (the caller's messages) here.",
    "media": "Adds a media part: `{{media url=imageUrl contentType='image/png'}}`.",
    "section": 'Names a section of the output: `{{section "answer"}}`.',
    "json": "Writes a value as JSON: `{{json data indent=2}}`.",
    "ifEquals": "Block shown when both arguments are equal: `{{#ifEquals a b}}…{{/ifEquals}}`.",
    "unlessEquals": "Block shown when the arguments differ: `{{#unlessEquals a b}}…{{/unlessEquals}}`.",
}
HANDLEBARS_HELPERS = {
    "if": "Block shown when the value is truthy: `{{#if x}}…{{else}}…{{/if}}`.",
    "unless": "Block shown when the value is falsy.",
    "each": "Repeats its block for every item: `{{#each items}}{{this}} ({{@index}}){{/each}}`.",
    "with": "Enters a value: `{{#with user}}{{name}}{{/with}}`.",
    "lookup": "Reads a key or index: `{{lookup map key}}`.",
    "log": "Logs its arguments (writes nothing into the prompt).",
}
HELPERS = {**DOTPROMPT_HELPERS, **HANDLEBARS_HELPERS}
DATA_VARIABLES = {
    "@root": "The top-level input, from inside any block.",
    "@index": "The position of the current item in `{{#each}}`, from 0.",
    "@key": "The key of the current entry when `{{#each}}` iterates a mapping.",
    "@first": "True for the first item of `{{#each}}`.",
    "@last": "True for the last item of `{{#each}}`.",
}
# Blocks that change what a bare name reads.
_CONTEXT_BLOCKS = frozenset({"each", "with"})
_LITERALS = frozenset({"true", "false", "null", "undefined"})
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_ID_CHARS = re.compile(r"^[^\s!\"#%&'()*+,./;<=>@\[\\\]^`{|}~]+$")


@dataclass
class Tag:
    """One `{{…}}` tag: `start`/`end` span the braces; `body` is what is inside, without the
    `~` strip marks and surrounding spaces, starting at `body_start`."""

    start: int
    end: int
    body: str
    body_start: int
    triple: bool = False
    raw_block: bool = False


@dataclass
class _Open:
    name: str
    tag: Tag
    changes_context: bool
    params: frozenset[str]


@dataclass
class HandlebarsAnalysis(TemplateAnalysis):
    messages: list[Message] = field(default_factory=list)


class _ScanError(Exception):
    def __init__(self, message: str, start: int, end: int) -> None:
        super().__init__(message)
        self.message, self.start, self.end = message, start, end


def scan_tags(source: str) -> tuple[list[Tag], _ScanError | None]:
    """The tags of `source`, as dotpromptz_handlebars tokenizes them, and the error that
    stopped the scan, if any."""
    tags: list[Tag] = []
    i = 0
    n = len(source)
    try:
        while i < n:
            start = source.find("{{", i)
            if start < 0:
                break
            slashes = 0
            j = start - 1
            while j >= i and source[j] == "\\":
                slashes += 1
                j -= 1
            if slashes == 1:  # `\{{` is the two characters {{
                i = start + 2
                continue
            if source.startswith("{{{{", start):
                i = _raw_block(source, start, tags)
                continue
            if source.startswith(("{{!--", "{{~!--"), start):
                body_start = source.index("!--", start)
                end = _long_comment_end(source, body_start + 3, start)
                tags.append(Tag(start, end, source[body_start : end - 2].rstrip("~"), body_start))
                i = end
                continue
            if source.startswith(("{{{", "{{~{"), start):
                body_from = start + (4 if source[start + 2] == "~" else 3)
                close = _first(source, body_from, ("}}}", "}~}}"))
                if close is None:
                    raise _ScanError("`{{{` is never closed with `}}}`", start, start + 3)
                at, closer = close
                tags.append(_tag(source, start, at + len(closer), body_from, at, triple=True))
                i = at + len(closer)
                continue
            end = source.find("}}", start + 2)
            if end < 0:
                raise _ScanError("`{{` is never closed with `}}`", start, start + 2)
            body_from = start + 2 + (source[start + 2 : start + 3] == "~")
            body_to = end - (source[end - 1 : end] == "~" and end - 1 >= body_from)
            tags.append(_tag(source, start, end + 2, body_from, body_to))
            i = end + 2
    except _ScanError as err:
        return tags, err
    return tags, None


def _tag(
    source: str, start: int, end: int, body_from: int, body_to: int, *, triple: bool = False
) -> Tag:
    raw = source[body_from:body_to]
    stripped = raw.strip()
    offset = body_from + (len(raw) - len(raw.lstrip()))
    return Tag(start, end, stripped, offset, triple=triple)


def _first(source: str, start: int, closers: tuple[str, ...]) -> tuple[int, str] | None:
    found = [(source.find(c, start), c) for c in closers]
    found = [(at, c) for at, c in found if at >= 0]
    return min(found) if found else None


def _long_comment_end(source: str, search: int, start: int) -> int:
    while True:
        mark = source.find("--", search)
        if mark < 0:
            raise _ScanError("`{{!--` is never closed with `--}}`", start, start + 5)
        j = mark + 2 + (source[mark + 2 : mark + 3] == "~")
        if source.startswith("}}", j):
            return j + 2
        search = mark + 1


def _raw_block(source: str, start: int, tags: list[Tag]) -> int:
    open_end = source.find("}}}}", start + 4)
    if open_end < 0:
        raise _ScanError("`{{{{` is never closed with `}}}}`", start, start + 4)
    header = source[start + 4 : open_end].strip()
    if not header or header.startswith("/"):
        raise _ScanError("a raw block needs a name: `{{{{raw}}}}`", start, open_end + 4)
    name = header.split()[0]
    close_tag = "{{{{/" + name + "}}}}"
    close = source.find(close_tag, open_end + 4)
    if close < 0:
        raise _ScanError(f"`{{{{{{{{{name}}}}}}}}}` is never closed", start, open_end + 4)
    tags.append(Tag(start, open_end + 4, "#" + header, start + 4, raw_block=True))
    tags.append(Tag(close, close + len(close_tag), "/" + name, close + 5, raw_block=True))
    return close + len(close_tag)


def partial_names(source: str) -> list[str]:
    """The names of the partials `source` includes (`{{> name}}`, `{{#> name}}`)."""
    tags, _ = scan_tags(source)
    names = []
    for tag in tags:
        body = tag.body[2:] if tag.body.startswith("#>") else tag.body[1:]
        if tag.body.startswith((">", "#>")) and body.strip():
            names.append(body.split()[0].strip("\"'[]"))
    return names


def engine_error(source: str) -> str | None:
    """What Dotprompt's Handlebars engine says is wrong with `source`, or None when it compiles."""
    from dotpromptz_handlebars._render import compile_template

    try:
        compile_template(source)
    except (ValueError, RecursionError) as err:
        return str(err) or type(err).__name__
    except Exception as err:  # the engine's own bug on odd input: not the user's syntax error
        return f"{type(err).__name__}: {err}"
    return None


def analyse_handlebars(source: str, first_line: int) -> HandlebarsAnalysis:
    """Analyse the body `source` whose first line is file line `first_line`."""
    offsets = OffsetMap(source, first_line)
    result = HandlebarsAnalysis()
    tags, scan_error = scan_tags(source)
    walker = _Walker(source, offsets, result)
    cursor = 0
    for tag in tags:
        if tag.start > cursor:
            result.data_spans.append((cursor, tag.start))
        cursor = tag.end
        walker.tag(tag)
    if scan_error is None and cursor < len(source):
        result.data_spans.append((cursor, len(source)))
    walker.finish(scan_error)
    result.messages = _messages(source, tags, offsets, walker.roles)
    message = engine_error(source)
    if message is not None:
        result.ok = False
        located = walker.problem or (
            (scan_error.message, scan_error.start, scan_error.end) if scan_error else None
        )
        if located is not None:
            what, start, end = located
            text = f"Handlebars syntax error: {what}"
        else:
            start, end = (tags[0].start, tags[0].end) if tags else (0, 0)
            text = f"Handlebars syntax error: {message}"
        result.problems.append(
            Problem("template-syntax", text, Range(offsets.position(start), offsets.position(end)))
        )
    return result


analyse_handlebars_cached = functools.lru_cache(maxsize=8)(analyse_handlebars)


class _Walker:
    """Classifies the names of each tag and pairs block openers with their closers."""

    def __init__(self, source: str, offsets: OffsetMap, result: HandlebarsAnalysis) -> None:
        self.source = source
        self.offsets = offsets
        self.result = result
        self.stack: list[_Open] = []
        self.problem: tuple[str, int, int] | None = None
        self.roles: list[tuple[str, Tag]] = []  # role changes: ("system", tag); "history"

    def _range(self, start: int, end: int) -> Range:
        return Range(self.offsets.position(start), self.offsets.position(end))

    def _fail(self, message: str, start: int, end: int) -> None:
        if self.problem is None:
            self.problem = (message, start, end)

    def finish(self, scan_error: _ScanError | None) -> None:
        if scan_error is None and self.stack:
            opened = self.stack[-1]
            self._fail(
                f"`{{{{#{opened.name}}}}}` is never closed with `{{{{/{opened.name}}}}}`",
                opened.tag.start,
                opened.tag.end,
            )

    def tag(self, tag: Tag) -> None:
        body = tag.body
        if body.startswith("!") or "{{" in body:
            return  # a comment, or prose after a `{{` typed half-way: no names in it
        if body.startswith("/"):
            self._close(tag)
        elif body == "else" or body.startswith(("else ", "else\t", "else\n")):
            if not self.stack:
                self._fail("`{{else}}` outside a block", tag.start, tag.end)
                return
            condition = body[4:].lstrip()
            for word in ("if", "unless"):
                if condition.startswith(word + " "):
                    at = tag.body_start + len(body) - len(condition)
                    self._helper(word, at)
                    self._expression_list(condition[len(word) :], at + len(word))
        elif body.startswith("#*inline"):
            self._open(tag, "inline", False, frozenset())
        elif body.startswith("*"):
            self._fail("decorators are not supported", tag.start, tag.end)
        elif body.startswith("#>"):
            name = self._partial(body[2:], tag.body_start + 2)
            self._open(tag, name or "", False, frozenset())
        elif body.startswith(("#", "^")):
            self._block(tag)
        elif body.startswith(">"):
            self._partial(body[1:], tag.body_start + 1)
        else:
            skip = 1 if body.startswith("&") else 0
            self._mustache(tag, body[skip:], tag.body_start + skip)

    def _open(self, tag: Tag, name: str, changes_context: bool, params: frozenset[str]) -> None:
        self.stack.append(_Open(name, tag, changes_context, params))

    def _close(self, tag: Tag) -> None:
        words = tag.body[1:].split()
        name = words[0] if words else ""
        if self.stack and self.stack[-1].name == name:
            opened = self.stack.pop()
            self.result.blocks.append(JinjaBlock(name, self._range(opened.tag.start, tag.end)))
            return
        if self.stack:
            expected = self.stack[-1].name
            self._fail(
                f"`{{{{/{name}}}}}` closes a block that is not open (expected `{{{{/{expected}}}}}`)",
                tag.start,
                tag.end,
            )
        else:
            self._fail(f"`{{{{/{name}}}}}` closes a block that is not open", tag.start, tag.end)

    def _block(self, tag: Tag) -> None:
        header = tag.body[1:]
        at = tag.body_start + 1
        lead = len(header) - len(header.lstrip())
        header, at = header.lstrip(), at + lead
        params: frozenset[str] = frozenset()
        if " as |" in header:
            header, rest = header.split(" as |", 1)
            params = frozenset(rest.rstrip("|").split())
        bits = _bits(header, at)
        if not bits:
            self._fail("empty block tag", tag.start, tag.end)
            return
        name, name_at = bits[0]
        args = bits[1:]
        if tag.body.startswith("^") or (name not in HELPERS and not args):
            # a section `{{#items}}…{{/items}}`: the name is read, and a list or mapping
            # is entered (a boolean keeps the context)
            self._path(name, name_at)
            self._open(tag, name, tag.body.startswith("#"), params)
            return
        self._helper(name, name_at)
        self._arguments(args)
        self._open(tag, name, name in _CONTEXT_BLOCKS, params)

    def _partial(self, header: str, at: int) -> str | None:
        lead = len(header) - len(header.lstrip())
        bits = _bits(header.strip(), at + lead)
        if not bits:
            return None
        name, name_at = bits[0]
        if name.startswith("("):
            self._expression(name, name_at)  # a dynamic partial `{{> (whichPartial)}}`
            return None
        clean = name.strip("\"'[]")
        start = name_at + (len(name) - len(name.lstrip("\"'[")))
        self.result.names.append(NameUse("partial", clean, self._range(start, start + len(clean))))
        self._arguments(bits[1:])
        return name

    def _mustache(self, tag: Tag, body: str, at: int) -> None:
        lead = len(body) - len(body.lstrip())
        bits = _bits(body.strip(), at + lead)
        if not bits:
            return
        name, name_at = bits[0]
        args = bits[1:]
        if name == "role" and args and _is_string(args[0][0]):
            self.roles.append((args[0][0][1:-1], tag))
        elif name == "history" and not args:
            self.roles.append(("history", tag))
        if name in HELPERS or args:
            self._helper(name, name_at)
            self._arguments(args)
        else:
            self._expression(name, name_at)

    def _helper(self, name: str, at: int) -> None:
        if _is_string(name):
            return
        self.result.names.append(NameUse("helper", name, self._range(at, at + len(name))))

    def _arguments(self, bits: list[tuple[str, int]]) -> None:
        for bit, at in bits:
            key = bit.split("=", 1)[0] if "=" in bit and bit[0] not in "\"'(" else None
            if key is not None and _ID_CHARS.match(key):
                self._expression(bit[len(key) + 1 :], at + len(key) + 1)
            else:
                self._expression(bit, at)

    def _expression_list(self, text: str, at: int) -> None:
        lead = len(text) - len(text.lstrip())
        self._arguments(_bits(text.strip(), at + lead))

    def _expression(self, bit: str, at: int) -> None:
        """A literal, a path or a sub-expression `(helper args)`."""
        if not bit or _is_string(bit) or bit in _LITERALS or _NUMBER.match(bit):
            return
        if bit.startswith("(") and bit.endswith(")"):
            inner = bit[1:-1]
            lead = len(inner) - len(inner.lstrip())
            bits = _bits(inner.strip(), at + 1 + lead)
            if bits:
                self._helper(*bits[0])
                self._arguments(bits[1:])
            return
        self._path(bit, at)

    def _path(self, path: str, at: int) -> None:
        if path.startswith("@"):
            root, _, rest = path[1:].partition(".")
            if root == "root" and rest:
                name = _first_segment(rest)
                if name:
                    start = at + len("@root.") + (1 if rest.startswith("[") else 0)
                    self._name("variable", name, start)
                return
            self._name("local", "@" + root, at)  # @index, @key, @first, @last, @state…
            return
        ups = 0
        while path.startswith("../"):
            ups += 1
            path, at = path[3:], at + 3
        if path in ("this", ".") or path.startswith(("this.", "this/", "./")):
            self._name("local", "this", at, length=len(path.split(".")[0].split("/")[0]) or 1)
            return
        name = _first_segment(path)
        if not name or (not path.startswith("[") and not _ID_CHARS.match(name)):
            return  # not a path (`>=` in `{{#if a >= 1}}`: the engine reports the tag)
        start = at + (1 if path.startswith("[") else 0)
        depth = sum(1 for o in self.stack if o.changes_context)
        if ups == 0 and any(name in o.params for o in self.stack):
            kind = "local"
        else:
            kind = "variable" if depth - ups <= 0 else "local"
        self._name(kind, name, start)

    def _name(self, kind: str, name: str, start: int, length: int | None = None) -> None:
        end = start + (len(name) if length is None else length)
        self.result.names.append(NameUse(kind, name, self._range(start, end)))


def _first_segment(path: str) -> str:
    if path.startswith("["):
        close = path.find("]")
        return path[1:close] if close > 0 else ""
    return re.split(r"[./\[]", path, maxsplit=1)[0]


def _is_string(bit: str) -> bool:
    return len(bit) >= 2 and bit[0] == bit[-1] and bit[0] in "\"'"


def _bits(text: str, at: int) -> list[tuple[str, int]]:
    """Whitespace-separated parts of a tag, keeping quoted strings and `( … )` / `[ … ]` whole
    (as dotpromptz_handlebars splits them), each with its offset in the body."""
    bits: list[tuple[str, int]] = []
    start = -1
    depth = 0
    quote = ""
    for index, char in enumerate(text):
        if start < 0 and not char.isspace():
            start = index
        if quote:
            if char == quote:
                quote = ""
            continue
        if char in "\"'":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char.isspace() and depth <= 0 and start >= 0:
            bits.append((text[start:index], at + start))
            start = -1
    if start >= 0:
        bits.append((text[start:], at + start))
    return bits


def _messages(
    source: str, tags: list[Tag], offsets: OffsetMap, roles: list[tuple[str, Tag]]
) -> list[Message]:
    """Messages split at `{{role "…"}}` and `{{history}}`; text before the first is the user's
    (Dotprompt's default role)."""
    messages: list[Message] = []
    boundaries = [(role, tag) for role, tag in roles]
    first_end = boundaries[0][1].start if boundaries else len(source)
    preamble = source[:first_end]
    if preamble.strip():
        messages.append(
            Message(
                "user",
                None,
                Range(offsets.position(0), offsets.position(first_end)),
                preamble.strip(),
            )
        )
    for index, (role, tag) in enumerate(boundaries):
        if role == "history":
            continue
        end = boundaries[index + 1][1].start if index + 1 < len(boundaries) else len(source)
        marker = Range(offsets.position(tag.start), offsets.position(tag.end))
        body = Range(offsets.position(tag.end), offsets.position(end))
        messages.append(Message(role, marker, body, source[tag.end : end].strip()))
    return messages


__all__ = [
    "DATA_VARIABLES",
    "DOTPROMPT_HELPERS",
    "HELPERS",
    "HandlebarsAnalysis",
    "Position",
    "analyse_handlebars",
    "analyse_handlebars_cached",
    "engine_error",
    "scan_tags",
]
