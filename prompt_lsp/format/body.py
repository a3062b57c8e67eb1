"""The template body's structure: messages split at role markers, and special tokens."""

from __future__ import annotations

import re
from collections.abc import Callable

from prompt_lsp.format.model import Message, Position, Range, TokenUse
from prompt_lsp.format.text import OffsetMap

ROLES = ("system", "user", "assistant")
ROLE_MARKER = re.compile(r"^\s*(system|user|assistant)\s*:\s*$", re.IGNORECASE)
# Prompty's boundary (its chat parser's own regex): also `developer:`, a `#` before the role and
# attributes `user[name="Alice", id=7]:`.
_ATTRIBUTE = r"\w+\s*=\s*(?:\"[^\"]*\"|[^\",\]]*)"
# (Prompty's possessive quantifiers are written here as comma-separated attributes: the same
# lines match, and a malformed one cannot make the match backtrack exponentially.)
PROMPTY_ROLE_MARKER = re.compile(
    r"^\s*#?\s*(system|user|assistant|developer)"
    rf"(\[\s*{_ATTRIBUTE}(?:\s*,\s*{_ATTRIBUTE})*\s*,?\s*\])?\s*:\s*$",
    re.IGNORECASE,
)

_TOKEN = re.compile(
    r"<\|[^|\s<>]{1,48}\|>"  # <|im_start|>, <|eot_id|>
    r"|<</?SYS>>"  # Llama 2 system block
    r"|\[/?[A-Z][A-Z_]{1,15}\]"  # [INST], [/INST], [SEP], [CLS]
    r"|</?[A-Za-z_][\w\-.]{0,48}>"  # <start>, </s>, <start_of_turn>, <article>
)


def split_messages(lines: list[str], first_line: int, *, prompty: bool = False) -> list[Message]:
    """Messages of the body `lines` (file lines from `first_line`); text before the first marker,
    or a body without markers, is one user message (a system message in Prompty, whose markers
    are `PROMPTY_ROLE_MARKER`)."""
    pattern = PROMPTY_ROLE_MARKER if prompty else ROLE_MARKER
    markers = [
        (i, m.group(1).lower()) for i, line in enumerate(lines) if (m := pattern.match(line))
    ]
    messages: list[Message] = []
    preamble_end = markers[0][0] if markers else len(lines)
    if any(line.strip() for line in lines[:preamble_end]):
        preamble_role = "system" if prompty else "user"
        messages.append(_message(preamble_role, None, lines, 0, preamble_end, first_line))
    for n, (index, role) in enumerate(markers):
        end = markers[n + 1][0] if n + 1 < len(markers) else len(lines)
        line_text = lines[index]
        marker = Range.of(
            first_line + index,
            len(line_text) - len(line_text.lstrip()),
            end=len(line_text.rstrip()),
        )
        messages.append(_message(role, marker, lines, index + 1, end, first_line))
    return messages


def _message(
    role: str, marker: Range | None, lines: list[str], start: int, end: int, first_line: int
) -> Message:
    body = lines[start:end]
    if body:
        body_range = Range(
            Position(first_line + start, 0), Position(first_line + end - 1, len(body[-1]))
        )
    else:  # a marker on the last line: an empty body right after it
        line = first_line + start - 1
        body_range = Range.of(line, len(lines[start - 1]))
    return Message(role, marker, body_range, "\n".join(body).strip())


def find_tokens(
    text: str,
    data_spans: list[tuple[int, int]],
    offsets: OffsetMap,
    is_known: Callable[[str], bool],
) -> list[TokenUse]:
    """Special tokens and angle tags in the plain-text spans of the body (outside Jinja)."""
    found: list[TokenUse] = []
    for span_start, span_end in data_spans:
        for match in _TOKEN.finditer(text, span_start, span_end):
            token = match.group()
            known = bool(is_known(token))
            if token.startswith("[") and not known:
                continue  # `[NOTE]` is prose
            rng = Range(offsets.position(match.start()), offsets.position(match.end()))
            found.append(TokenUse(token, rng, known))
    return found
