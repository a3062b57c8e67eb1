"""Jinja analysis of the template body with Jinja's own lexer and parser.

Every name token gets a kind (variable, local, filter, test, tag) and a source range; syntax
errors are mapped back to the file's line and, where Jinja only knows "end of template", to the
opener that was never closed.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from jinja2 import TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator
from jinja2.lexer import TokenStream
from jinja2.meta import TrackingCodeGenerator
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
        "true",
        "false",
        "none",
        "True",
        "False",
        "None",
    ]
)
# Words that are syntax only inside some statements (`{% include x ignore missing %}`,
# `{% block b scoped required %}`, `{% from f import m as n with context %}`); elsewhere they
# are ordinary names: `{{ context }}` and `{{ missing }}` are common prompt variables.
SOFT_KEYWORDS = {
    "recursive": ("for",),
    "scoped": ("block",),
    "required": ("block",),
    "ignore": ("include", "extends"),
    "missing": ("include", "extends"),
    "with": ("include", "import", "from"),
    "without": ("include", "import", "from"),
    "context": ("include", "import", "from"),
    "as": ("import", "from"),
    "import": ("from",),
}
# Past this many tokens analysis stops: the lexer costs ~10 µs a token and typing must not wait.
MAX_TOKENS = 20_000
# Tags whose body runs to a matching `end<tag>`.
BLOCK_TAGS = frozenset(
    ["for", "if", "macro", "call", "filter", "block", "with", "autoescape", "trans", "raw"]
)


@functools.cache
def environment() -> SandboxedEnvironment:
    """The one Jinja environment: sandboxed, as used for rendering."""
    return SandboxedEnvironment(keep_trailing_newline=True)


def _unknown_name(*args: object, **kwargs: object) -> None:
    """Stands in for a filter or test the environment does not have (analysis only)."""


class _AnyName(dict):
    """Filters or tests where every name resolves: Jinja's code generator fails on an unknown
    filter at compile time, which would hide every other finding behind one syntax error;
    unknown filters are reported by checks/ instead."""

    def get(self, key, default=None):  # type: ignore[override]
        return super().get(key, _unknown_name)


@functools.cache
def _analysis_environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(keep_trailing_newline=True)
    env.filters = _AnyName(env.filters)
    env.tests = _AnyName(env.tests)
    return env


@dataclass
class TemplateAnalysis:
    names: list[NameUse] = field(default_factory=list)
    blocks: list[JinjaBlock] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    data_spans: list[tuple[int, int]] = field(default_factory=list)  # plain text outside Jinja
    ok: bool = True
    ast: nodes.Template | None = None  # Jinja's tree when it parsed; never changed after


def analyse_template_cached(source: str, first_line: int, bounded: bool = True) -> TemplateAnalysis:
    """`analyse_template`, remembered for the last few bodies: an edit in the front matter leaves
    the body as it was, and rendering reuses the parsed tree. Callers copy the lists they keep."""
    return _analysis_cache(source, first_line, bounded)


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


def analyse_template(source: str, first_line: int, bounded: bool = True) -> TemplateAnalysis:
    """Analyse `source` (the body joined with `\\n`) whose first line is file line `first_line`;
    `bounded`: stop after MAX_TOKENS, as the editor must (a command line need not)."""
    offsets = OffsetMap(source, first_line)
    result = TemplateAnalysis()
    tokens, raw, lex_error = _lex(source, MAX_TOKENS if bounded else None)
    result.data_spans = [(t.start, t.end) for t in tokens if t.kind == "data"]
    free_names: set[str] | None = None
    parse_error = lex_error
    if lex_error is None:
        try:
            tree = _parse_tokens(source, raw)
            free_names = _free_names(tree)
            result.ast = tree
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
        pending = _pending_opener(tokens, source)
        if pending is not None:
            # Jinja read everything after an unclosed `{{` as one expression: the names it
            # found past the opener's line are prose, not variables
            last_line = offsets.position(pending.start).line
            result.names = [u for u in result.names if u.range.start.line <= last_line]
    return result


def _lex(
    source: str, max_tokens: int | None = MAX_TOKENS
) -> tuple[list[_Token], list[tuple], TemplateSyntaxError | None]:
    """Tokens with their offsets (each raw value is found from the running cursor), and the raw
    token tuples so the parser need not lex a second time."""
    tokens: list[_Token] = []
    raw: list[tuple] = []
    cursor = 0
    try:
        for item in environment().lexer.tokeniter(source, None):
            if max_tokens is not None and len(raw) >= max_tokens:
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
    env = _analysis_environment()
    parser = Parser(env, source)
    parser.stream = TokenStream(env.lexer.wrap(iter(raw)), None, None)
    return parser.parse()


class _AnyIdentifier(dict):
    def __missing__(self, key: str) -> str:
        return "t_unused"


class _Tracker(TrackingCodeGenerator):
    """`jinja2.meta.find_undeclared_variables`'s code generator, minus the work that cannot
    change which names are free (together half its time on a long prompt): the constant-folding
    optimizer, the filter/test lookups, and the code for `{{ … }}` output. Free names are
    collected when a frame is entered, from each frame's symbol analysis, and output nodes hold
    only expressions, which never open a frame."""

    def __init__(self, environment: SandboxedEnvironment) -> None:
        CodeGenerator.__init__(
            self, environment, "<introspection>", "<introspection>", optimized=False
        )
        self.undeclared_identifiers: set[str] = set()
        # pull_dependencies (skipped) is what fills these; filter and test nodes read them.
        self.filters = _AnyIdentifier()
        self.tests = _AnyIdentifier()

    def visit_Output(self, node: nodes.Output, frame: object) -> None:  # type: ignore[override]
        pass

    def pull_dependencies(self, nodes: object) -> None:  # type: ignore[override]
        pass


def _free_names(ast: nodes.Template) -> set[str]:
    """The names the template looks up in its context (Jinja's own scoping rules)."""
    tracker = _Tracker(ast.environment)  # type: ignore[arg-type]
    tracker.visit(ast)
    return tracker.undeclared_identifiers


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
    statement: list[_Token] = []  # the tokens of the current {% … %} or {{ … }}
    bindings: set[str] = set()  # the names the current statement binds
    in_block = False  # the current statement is a {% … %}
    for index, token in enumerate(significant):
        if token.kind in ("block_begin", "variable_begin"):
            statement = []
            bindings = set()
            in_block = token.kind == "block_begin"
            paren_depth = 0
            statement_start = token.start
            continue
        if token.kind == "operator" and token.value in "([{":
            paren_depth += 1
        elif token.kind == "operator" and token.value in ")]}":
            paren_depth = max(0, paren_depth - 1)
        if token.kind == "block_end" and statement:
            _close_statement(statement, bindings, open_blocks, scopes, token, offsets, result)
        if token.kind != "name":
            statement.append(token)
            continue
        tag = statement[0].value if in_block and statement and statement[0].kind == "name" else None
        kind = _name_kind(significant, index, statement, paren_depth, tag)
        statement.append(token)
        if kind == "variable":
            if any(token.value in scope for scope in scopes):  # `loop` is in a for's scope
                kind = "local"
            elif free_names is not None:
                kind = "variable" if token.value in free_names else "local"
            elif token.value in bound_anywhere:
                kind = "local"
        if kind == "binding":
            bound_anywhere.add(token.value)
            bindings.add(token.value)
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
    tokens: list[_Token], index: int, statement: list[_Token], paren_depth: int, tag: str | None
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
    if value in KEYWORDS or tag in SOFT_KEYWORDS.get(value, ()):
        return None
    if tag == "filter" and previous is not None and previous.value == "filter":
        return "filter"  # `{% filter upper %}`
    if paren_depth and (tag == "macro" or (tag == "call" and _in_caller_params(statement))):
        # `{% macro m(a, b=c) %}`, `{% call(a, b=c) m(x) %}`: a and b are parameters; c and x
        # are expressions of the enclosing scope
        at_parameter = paren_depth == 1 and previous is not None and previous.value in "(,"
        return "binding" if at_parameter else "variable"
    if following is not None and following.kind == "operator" and following.value == "=":
        return None if paren_depth else "binding"  # keyword argument, or `set x =`
    if tag == "for" and not any(t.value == "in" for t in statement):
        return "binding"
    if tag in ("macro", "block", "endblock", "import", "from") and not paren_depth:
        return "binding"
    if tag == "set" and not any(t.value == "=" for t in statement):
        return "binding"
    if tag == "with" and following is not None and following.value == "=":
        return "binding"
    return "variable"


def _in_caller_params(statement: list[_Token]) -> bool:
    """Whether a `{% call(…) … %}` statement so far is inside the caller's parameter list."""
    if len(statement) < 2 or statement[1].value != "(":
        return False
    depth = 0
    for token in statement[1:]:
        if token.kind == "operator" and token.value in "([{":
            depth += 1
        elif token.kind == "operator" and token.value in ")]}":
            depth -= 1
            if depth == 0:
                return False
    return True


def _open_block(
    token: _Token, start: int, open_blocks: list[_OpenBlock], scopes: list[set[str]]
) -> None:
    """A block tag opens a scope; the names it binds are added when its statement closes."""
    if token.value in BLOCK_TAGS:
        open_blocks.append(_OpenBlock(token.value, start))
        scopes.append(set())


def _close_statement(
    statement: list[_Token],
    bindings: set[str],
    open_blocks: list[_OpenBlock],
    scopes: list[set[str]],
    block_end: _Token,
    offsets: OffsetMap,
    result: TemplateAnalysis,
) -> None:
    tag = statement[0].value if statement[0].kind == "name" else ""
    if tag in ("for", "macro", "call", "with") and scopes:
        # loop targets, parameters, `with` assignments: local inside the block
        scopes[-1].update(bindings)
        if tag == "macro" and len(statement) > 1:
            scopes[-1].discard(statement[1].value)  # its own name resolves outside it
        if tag == "for":
            scopes[-1].add("loop")
        elif tag in ("macro", "call"):
            scopes[-1].update(("caller", "varargs", "kwargs"))
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
    bad_char = _UNEXPECTED_CHAR.search(message)
    if bad_char is not None:  # the lexer says exactly where: "unexpected char '\x00' at 13"
        begin = offsets.position(int(bad_char.group(1)))
        return Problem(
            "template-syntax",
            f"Template syntax error: {message[: bad_char.start(1) - 4]}",
            Range(begin, Position(begin.line, begin.character + 1)),
        )
    unclosed = _unclosed_opener(tokens, open_blocks, "end of template" in message.lower(), source)
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


_UNEXPECTED_CHAR = re.compile(r"^unexpected char .* at (\d+)$")


def _pending_opener(tokens: list[_Token], source: str) -> _Token | None:
    """The last `{{`/`{%`/`{#` whose closer never came (not in the tokens, nor in the text
    after it: a lexer error also stops the tokens before a closer)."""
    pending: _Token | None = None
    for token in tokens:
        if token.kind in _CLOSERS:
            pending = token
        elif pending is not None and token.kind == _CLOSERS[pending.kind][0]:
            pending = None
    if pending is not None and source.find(_CLOSERS[pending.kind][1], pending.end) >= 0:
        return None
    return pending


def _unclosed_opener(
    tokens: list[_Token], open_blocks: list[_OpenBlock], at_end: bool, source: str
) -> tuple[int, str] | None:
    """Where the error really starts: a `{{`/`{%`/`{#` whose closer never came or, when Jinja
    hit the end of the template, the innermost block that never ended."""
    pending = _pending_opener(tokens, source)
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


_analysis_cache = functools.lru_cache(maxsize=8)(analyse_template)
