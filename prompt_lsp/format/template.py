"""Jinja analysis of the template body with Jinja's own lexer and parser.

Every name token gets a kind (variable, local, filter, test, tag) and a source range; syntax
errors are mapped back to the file's line and, where Jinja only knows "end of template", to the
opener that was never closed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.lexer import TokenStream
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from prompt_lsp.format.model import JinjaBlock, NameUse, Position, Problem, Range
from prompt_lsp.format.text import OffsetMap

# Words that are syntax, never a variable.
KEYWORDS = frozenset(
    [
        "in",
        "is",
        "and",
        "or",
        "not",
        "if",
        "else",
        "elif",
        "for",
        "recursive",
        "true",
        "false",
        "none",
        "True",
        "False",
        "None",
        "as",
        "import",
        "from",
        "with",
        "without",
        "context",
        "ignore",
        "missing",
        "scoped",
        "required",
    ]
)
# Tags whose body runs to a matching `end<tag>`.
# Past this many tokens analysis stops: the lexer costs ~10 µs a token and typing must not wait.
MAX_TOKENS = 20_000
BLOCK_TAGS = frozenset(
    ["for", "if", "macro", "call", "filter", "block", "with", "autoescape", "trans", "raw"]
)


@functools.cache
def environment() -> SandboxedEnvironment:
    """The one Jinja environment: sandboxed, as used for rendering."""
    return SandboxedEnvironment(keep_trailing_newline=True)


@dataclass
class TemplateAnalysis:
    names: list[NameUse] = field(default_factory=list)
    blocks: list[JinjaBlock] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    data_spans: list[tuple[int, int]] = field(default_factory=list)  # plain text outside Jinja
    ok: bool = True


class TooManyTokens(TemplateSyntaxError):
    """The template is too large to analyse while typing."""


@dataclass
class _Token:
    kind: str
    value: str
    start: int
    end: int


@dataclass
class _OpenBlock:
    tag: str
    start: int


def analyse_template(source: str, first_line: int) -> TemplateAnalysis:
    """Analyse `source` (the body joined with `\\n`) whose first line is file line `first_line`."""
    offsets = OffsetMap(source, first_line)
    result = TemplateAnalysis()
    tokens, raw, lex_error = _lex(source)
    result.data_spans = [(t.start, t.end) for t in tokens if t.kind == "data"]
    free_names: set[str] | None = None
    parse_error = lex_error
    if lex_error is None:
        try:
            free_names = set(meta.find_undeclared_variables(_parse_tokens(source, raw)))
        except TemplateSyntaxError as err:
            parse_error = err
        except (RecursionError, MemoryError) as err:  # pathological nesting
            parse_error = TemplateSyntaxError(
                f"template too deeply nested ({type(err).__name__})", 1
            )
    open_blocks = _classify(tokens, free_names, offsets, result)
    if isinstance(parse_error, TooManyTokens):
        result.ok = False
        result.problems.append(
            Problem(
                "too-large",
                f"Template {parse_error.message}: checks of the rest are skipped.",
                Range.of(first_line, 0),
            )
        )
    elif parse_error is not None:
        result.ok = False
        result.problems.append(_syntax_problem(parse_error, tokens, open_blocks, source, offsets))
    return result


def _lex(source: str) -> tuple[list[_Token], list[tuple], TemplateSyntaxError | None]:
    """Tokens with their offsets (each raw value is found from the running cursor), and the raw
    token tuples so the parser need not lex a second time."""
    tokens: list[_Token] = []
    raw: list[tuple] = []
    cursor = 0
    try:
        for item in environment().lexer.tokeniter(source, None):
            if len(raw) >= MAX_TOKENS:
                return (
                    tokens,
                    raw,
                    TooManyTokens(f"analysis stopped after {MAX_TOKENS:,} Jinja tokens", item[0]),
                )
            raw.append(item)
            kind, value = item[1], item[2]
            if not value:
                continue
            start = source.find(value, cursor)
            if start < 0:
                break
            cursor = start + len(value)
            tokens.append(_Token(kind, value, start, cursor))
    except TemplateSyntaxError as err:
        return tokens, raw, err
    return tokens, raw, None


def _parse_tokens(source: str, raw: list[tuple]) -> nodes.Template:
    """Jinja's parser fed with tokens already lexed."""
    env = environment()
    parser = Parser(env, source)
    parser.stream = TokenStream(env.lexer.wrap(iter(raw)), None, None)
    return parser.parse()


def _classify(
    tokens: list[_Token], free_names: set[str] | None, offsets: OffsetMap, result: TemplateAnalysis
) -> list[_OpenBlock]:
    """Give every name token a kind; collect `{% tag %}…{% endtag %}` blocks."""
    significant = [t for t in tokens if t.kind not in ("whitespace", "comment", "data")]
    open_blocks: list[_OpenBlock] = []
    scopes: list[set[str]] = []  # names bound by enclosing for/macro tags
    bound_anywhere: set[str] = set()
    paren_depth = 0
    statement_start = 0
    statement: list[_Token] = []  # the tokens of the current {% … %}
    for index, token in enumerate(significant):
        if token.kind in ("block_begin", "variable_begin"):
            statement = []
            paren_depth = 0
            statement_start = token.start
            continue
        if token.kind == "operator" and token.value in "([{":
            paren_depth += 1
        elif token.kind == "operator" and token.value in ")]}":
            paren_depth = max(0, paren_depth - 1)
        if token.kind == "block_end" and statement:
            _close_statement(statement, open_blocks, scopes, token, offsets, result)
        if token.kind != "name":
            statement.append(token)
            continue
        kind = _name_kind(significant, index, statement, paren_depth)
        statement.append(token)
        if kind == "variable":
            if any(token.value in scope for scope in scopes) or token.value == "loop" and scopes:
                kind = "local"
            elif free_names is not None:
                kind = "variable" if token.value in free_names else "local"
            elif token.value in bound_anywhere:
                kind = "local"
        if kind == "binding":
            bound_anywhere.add(token.value)
            kind = "local"
        if kind is None:
            continue
        if kind == "tag":
            _open_block(token, statement_start, open_blocks, scopes)
        result.names.append(
            NameUse(
                kind, token.value, Range(offsets.position(token.start), offsets.position(token.end))
            )
        )
    return open_blocks


def _name_kind(
    tokens: list[_Token], index: int, statement: list[_Token], paren_depth: int
) -> str | None:
    previous = tokens[index - 1] if index else None
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    value = tokens[index].value
    if previous is not None and previous.kind == "block_begin":
        return "tag"
    if previous is not None and previous.kind == "operator" and previous.value == ".":
        return None  # attribute
    if previous is not None and previous.kind == "operator" and previous.value == "|":
        return "filter"
    if previous is not None and previous.kind == "name" and previous.value == "is":
        return None if value == "not" else "test"
    if (
        previous is not None
        and previous.value == "not"
        and index >= 2
        and tokens[index - 2].value == "is"
    ):
        return "test"
    if value in KEYWORDS:
        return None
    if following is not None and following.kind == "operator" and following.value == "=":
        return None if paren_depth else "binding"  # keyword argument, or `set x =`
    tag = statement[0].value if statement and statement[0].kind == "name" else None
    if tag == "for" and not any(t.value == "in" for t in statement):
        return "binding"
    if tag in ("macro", "call") and paren_depth:
        return "binding"
    if tag in ("macro", "block", "endblock", "import", "from") and not paren_depth:
        return "binding"
    if tag == "set" and not any(t.value == "=" for t in statement):
        return "binding"
    if tag == "with" and following is not None and following.value == "=":
        return "binding"
    return "variable"


def _open_block(
    token: _Token, start: int, open_blocks: list[_OpenBlock], scopes: list[set[str]]
) -> None:
    """A block tag opens a scope; the names it binds are added when its statement closes."""
    if token.value in BLOCK_TAGS:
        open_blocks.append(_OpenBlock(token.value, start))
        scopes.append(set())


def _close_statement(
    statement: list[_Token],
    open_blocks: list[_OpenBlock],
    scopes: list[set[str]],
    block_end: _Token,
    offsets: OffsetMap,
    result: TemplateAnalysis,
) -> None:
    tag = statement[0].value if statement[0].kind == "name" else ""
    if tag in ("for", "macro", "call") and scopes:
        scopes[-1].update(
            t.value for t in statement[1:] if t.kind == "name" and t.value not in KEYWORDS
        )
        if tag == "for":
            in_index = next((i for i, t in enumerate(statement) if t.value == "in"), len(statement))
            scopes[-1].intersection_update(t.value for t in statement[1:in_index])
            scopes[-1].add("loop")
    if tag == "set" and not any(t.value == "=" for t in statement):
        open_blocks.append(_OpenBlock("set", statement[0].start))
        scopes.append(set())
    if tag.startswith("end") and open_blocks and open_blocks[-1].tag == tag[3:]:
        opened = open_blocks.pop()
        if scopes:
            scopes.pop()
        result.blocks.append(
            JinjaBlock(
                opened.tag, Range(offsets.position(opened.start), offsets.position(block_end.end))
            )
        )


def _syntax_problem(
    err: TemplateSyntaxError,
    tokens: list[_Token],
    open_blocks: list[_OpenBlock],
    source: str,
    offsets: OffsetMap,
) -> Problem:
    message = str(err.message or "template syntax error")
    unclosed = _unclosed_opener(tokens, open_blocks, "end of template" in message.lower())
    if unclosed is not None:
        start, what = unclosed
        begin = offsets.position(start)
        return Problem(
            "template-syntax",
            f"Template syntax error: {what} ({message})",
            Range(begin, Position(begin.line, begin.character + 2)),
        )
    lines = source.split("\n")
    line_index = min(max(0, (err.lineno or 1) - 1), len(lines) - 1)
    text = lines[line_index]
    start_char = _first_jinja_column(text)
    begin = offsets.position(sum(len(line) + 1 for line in lines[:line_index]) + start_char)
    return Problem(
        "template-syntax",
        f"Template syntax error: {message}",
        Range(begin, Position(begin.line, max(len(text), start_char + 1))),
    )


_CLOSERS = {
    "variable_begin": ("variable_end", "}}"),
    "block_begin": ("block_end", "%}"),
    "comment_begin": ("comment_end", "#}"),
}


def _unclosed_opener(
    tokens: list[_Token], open_blocks: list[_OpenBlock], at_end: bool
) -> tuple[int, str] | None:
    """Where the error really starts: a `{{`/`{%`/`{#` whose closer never came or, when Jinja
    hit the end of the template, the innermost block that never ended."""
    pending: _Token | None = None
    for token in tokens:
        if token.kind in _CLOSERS:
            pending = token
        elif pending is not None and token.kind == _CLOSERS[pending.kind][0]:
            pending = None
    if pending is not None:
        return (
            pending.start,
            f"`{pending.value}` is never closed with `{_CLOSERS[pending.kind][1]}`",
        )
    if at_end and open_blocks:
        block = open_blocks[-1]
        return block.start, f"`{{% {block.tag} %}}` is never closed with `{{% end{block.tag} %}}`"
    return None


def _first_jinja_column(line: str) -> int:
    positions = [p for p in (line.find("{{"), line.find("{%"), line.find("{#")) if p >= 0]
    if positions:
        return min(positions)
    return len(line) - len(line.lstrip())
