"""Mustache analysis of a template body (Prompty's `template.format.kind: mustache`), in the same
shape as the Jinja analysis. Validity is decided by `chevron`, the library Prompty renders
Mustache with; the tags are scanned here too, to give names and blocks their ranges.

A name at the top level reads the input (a variable). Inside a section `{{#items}}…{{/items}}`
a name may be a field of the current item or, failing that, of an outer context: it is local,
so an item's field is never reported as undeclared.
"""

from __future__ import annotations

import functools
import re

from prompt_lsp.format.model import JinjaBlock, NameUse, Problem, Range
from prompt_lsp.format.template import TemplateAnalysis
from prompt_lsp.format.text import OffsetMap

_SET_DELIMITERS = re.compile(r"^=\s*(\S+)\s+(\S+)\s*=$")


def chevron_error(source: str) -> str | None:
    """What chevron says is wrong with `source`, or None when it tokenizes."""
    import chevron.tokenizer

    try:
        for _ in chevron.tokenizer.tokenize(source):
            pass
    except chevron.tokenizer.ChevronError as err:
        return " ".join(str(err).split())
    except Exception as err:  # chevron's own bug on odd input
        return f"{type(err).__name__}: {err}"
    return None


def analyse_mustache(source: str, first_line: int) -> TemplateAnalysis:
    offsets = OffsetMap(source, first_line)
    result = TemplateAnalysis()

    def rng(start: int, end: int) -> Range:
        return Range(offsets.position(start), offsets.position(end))

    left, right = "{{", "}}"
    stack: list[tuple[str, int]] = []  # open sections: name, start offset
    located: tuple[str, int, int] | None = None
    cursor = 0
    while cursor < len(source):
        start = source.find(left, cursor)
        if start < 0:
            break
        result.data_spans.append((cursor, start))
        triple = left == "{{" and source.startswith("{{{", start)
        closer = "}" + right if triple else right
        body_from = start + len(left) + (1 if triple else 0)
        end = source.find(closer, body_from)
        if end < 0:
            located = located or (f"`{left}` is never closed with `{right}`", start, body_from)
            cursor = len(source)
            break
        cursor = end + len(closer)
        raw = source[body_from:end]
        body = raw.strip()
        at = body_from + len(raw) - len(raw.lstrip())
        sigil = body[:1]
        if sigil == "!":
            continue
        if sigil == "=":
            match = _SET_DELIMITERS.match(body)
            if match:
                left, right = match.group(1), match.group(2)
            continue
        if sigil in "#^/>&{":
            name = body[1:].strip().rstrip("}").strip()
            name_at = at + 1 + (len(body[1:]) - len(body[1:].lstrip()))
        else:
            name, name_at = body, at
        if sigil == "/":
            if stack and stack[-1][0] == name:
                _, opened = stack.pop()
                result.blocks.append(JinjaBlock(name, rng(opened, cursor)))
            else:
                located = located or (
                    f"`{left}/{name}{right}` closes a section that is not open",
                    start,
                    cursor,
                )
            continue
        if sigil == ">":
            result.names.append(NameUse("partial", name, rng(name_at, name_at + len(name))))
            continue
        if name and name != ".":
            root = name.split(".")[0]
            kind = "local" if stack else "variable"
            result.names.append(NameUse(kind, root, rng(name_at, name_at + len(root))))
        elif name == ".":
            result.names.append(NameUse("local", ".", rng(name_at, name_at + 1)))
        if sigil in "#^":
            stack.append((name, start))
    if cursor < len(source):
        result.data_spans.append((cursor, len(source)))
    if located is None and stack:
        name, opened = stack[-1]
        located = (
            f"`{{{{#{name}}}}}` is never closed with `{{{{/{name}}}}}`",
            opened,
            opened + len(name) + 5,
        )
    message = chevron_error(source)
    if message is not None:
        result.ok = False
        what, start, end = located if located else (message, 0, 0)
        result.problems.append(
            Problem("template-syntax", f"Mustache syntax error: {what}", rng(start, end))
        )
    return result


analyse_mustache_cached = functools.lru_cache(maxsize=8)(analyse_mustache)
