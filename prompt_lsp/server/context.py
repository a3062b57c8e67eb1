"""What the cursor is on: shared by completion and hover. Pure functions of the document model."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prompt_lsp.format.model import NameUse, Position, PromptDocument, TokenUse

KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<dash>-\s+)?(?P<key>[\w?]+)\s*:(?:\s|$)")


def in_front_matter(doc: PromptDocument, line: int) -> bool:
    if not doc.has_front_matter or line < 1:
        return False
    return line < doc.body_start_line - 1 if doc.front_matter_closed else True


def yaml_path_at(lines: list[str], line: int, indent: int) -> tuple[str, ...]:
    """Key path of the mapping a line with this indentation belongs to, read upwards by indentation
    (`config:` then `  temperature:` gives ("config",) for the second line's keys)."""
    path: list[str] = []
    for index in range(line - 1, 0, -1):
        text = lines[index]
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        if text.strip() == "---":
            break
        match = KEY_LINE.match(text)
        own_indent = (
            len(text)
            - len(text.lstrip())
            + (len(match.group("dash")) if match and match.group("dash") else 0)
        )
        if own_indent < indent:
            if match:
                path.insert(0, match.group("key"))
            indent = len(text) - len(text.lstrip())
            if indent == 0:
                break
    return tuple(path)


def name_at(doc: PromptDocument, pos: Position) -> NameUse | None:
    for use in doc.names:
        if use.range.start.line == pos.line and use.range.start <= pos <= use.range.end:
            return use
    return None


def token_at(doc: PromptDocument, pos: Position) -> TokenUse | None:
    for token in doc.tokens:
        if token.range.start.line == pos.line and token.range.start <= pos <= token.range.end:
            return token
    return None


@dataclass(frozen=True)
class KeyAt:
    """The front matter key whose line the cursor is on."""

    path: tuple[str, ...]  # parent path + the key itself
    on_key: bool  # the cursor is on the key, not its value
    value_start: int  # column where the value starts


def key_at(doc: PromptDocument, pos: Position) -> KeyAt | None:
    if not in_front_matter(doc, pos.line):
        return None
    text = doc.lines[pos.line]
    match = KEY_LINE.match(text)
    if not match:
        return None
    indent = len(match.group("indent")) + (len(match.group("dash")) if match.group("dash") else 0)
    parent = yaml_path_at(doc.lines, pos.line, indent)
    if match.group("dash"):
        parent = parent + ("-",)
    return KeyAt(parent + (match.group("key"),), pos.character <= match.end("key"), match.end())
