"""Literal keys in a front matter: where they are, and the text and values with them taken out.

A key is found in the parsed YAML, not by lines, so every shape is seen: block or flow style,
quoted, folded (`>-`) or literal scalars, and aliases (`api_key: *k` finds the anchored
literal wherever it stands). A value counts as a key when it sits under a key-like name
(`api_key`, `token`, `Authorization`, `X-Api-Key`, …, at any depth, e.g. in `extra_headers`
or Prompty's `model.connection` / `model.options`) or has the shape of a known provider's key
(`sk-…`, `ghp_…`, `AIza…`), unless it only points at one (`${env:OPENAI_API_KEY}`,
`os.environ/…`) or is too short to be one (`EMPTY`, `none`). Pure: no I/O.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from prompt_lsp.format.model import Position, Range

REDACTED = "<redacted>"
MIN_SECRET_CHARS = 8
# `token` but not `tokens` / `max_tokens` / `tokenizer` (counts and settings, not secrets)
_SECRET_NAME = re.compile(
    r"(api[_-]?key|secret|token(?![a-z])|password|passwd|authorization|credential"
    r"|access[_-]?key|private[_-]?key|bearer|cookie)",
    re.I,
)
_KEY_SHAPE = re.compile(
    r"(?<![A-Za-z0-9])(sk-[A-Za-z0-9_-]{16,}|gh[opsu]_[A-Za-z0-9]{20,}|github_pat_\w{20,}"
    r"|AIza[0-9A-Za-z_-]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}"
    r"|gsk_[A-Za-z0-9]{20,}|pplx-[A-Za-z0-9]{20,})"
)
_REFERENCE = re.compile(
    r"^\s*(\$\{env:[^}]*\}|os\.environ/\S+|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\{\{[^}]*\}\})\s*$"
)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def looks_like_key(value: str) -> bool:
    """A literal of a known key shape (`sk-…`), anywhere in the string."""
    return bool(_KEY_SHAPE.search(value))


def might_hold_secrets(text: str, names: Iterable[str] | None = None) -> bool:
    """A cheap test before parsing: no key-like name (among `names`, the front matter's keys
    when known, else anywhere in `text`) and no key shape means no secret."""
    if _KEY_SHAPE.search(text):
        return True
    if names is None:
        return bool(_SECRET_NAME.search(text))
    return any(is_secret_name(name) for name in names)


def is_literal_secret(value: str, under_secret_name: bool) -> bool:
    """Whether a string value is a key written into the file (not a reference to one)."""
    text = value.strip()
    if len(text) < MIN_SECRET_CHARS or text == REDACTED or _REFERENCE.match(text):
        return False
    return under_secret_name or looks_like_key(text)


@dataclass(frozen=True)
class Secret:
    """One literal key in the front matter: the dotted path it was reached by, its text and
    where the literal stands (for an alias: where its anchor's value is)."""

    path: str
    value: str
    range: Range  # in file coordinates
    start: int  # character offsets into the front matter text
    end: int
    block: bool  # a `|` or `>` block scalar (its span runs to the end of its last line)


def find_secrets(front_matter: str, first_line: int = 1) -> list[Secret]:
    """Every literal key in `front_matter` (the YAML between the `---` lines, whose first line
    is line `first_line` of the file). Invalid YAML has none that can be located. Remembered
    per text: a keystroke in the body reads the same front matter again."""
    return list(_find_secrets(front_matter, first_line))


@functools.lru_cache(maxsize=64)
def _find_secrets(front_matter: str, first_line: int) -> tuple[Secret, ...]:
    try:
        loader = yaml.SafeLoader(front_matter)
    except yaml.YAMLError:
        return ()
    try:
        root = loader.get_single_node()
    except (yaml.YAMLError, RecursionError):
        return ()
    finally:
        loader.dispose()
    if root is None:
        return ()
    found: dict[tuple[int, int], Secret] = {}
    _walk(root, (), False, first_line, found, set())
    return tuple(sorted(found.values(), key=lambda s: s.start))


def _walk(
    node: yaml.Node,
    path: tuple[str, ...],
    secret_context: bool,
    first_line: int,
    found: dict[tuple[int, int], Secret],
    seen: set[tuple[int, bool]],
) -> None:
    """Each node is visited at most twice (outside and inside a key-like name), so an alias
    tree cannot blow up, yet `api_key: *k` still marks the anchored literal."""
    mark = (id(node), secret_context)
    if mark in seen:
        return
    seen.add(mark)
    if isinstance(node, yaml.ScalarNode):
        if node.tag.endswith(":str") and is_literal_secret(node.value, secret_context):
            start, end = node.start_mark, node.end_mark
            found[(start.index, end.index)] = Secret(
                ".".join(path) or "value",
                node.value,
                Range(
                    Position(first_line + start.line, start.column),
                    Position(first_line + end.line, end.column),
                ),
                start.index,
                end.index,
                node.style in ("|", ">"),
            )
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            inner = secret_context or is_secret_name(name)
            _walk(value_node, (*path, name), inner, first_line, found, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, str(index)), secret_context, first_line, found, seen)


def front_matter_text(text: str) -> tuple[str, int] | None:
    """(the YAML between the `---` lines, its offset in `text`), or None without one."""
    if not text.startswith("---"):
        return None
    first_break = text.find("\n")
    if first_break < 0 or text[:first_break].rstrip() != "---":
        return None
    start = first_break + 1
    close = re.search(r"^(---|\.\.\.)[ \t]*$", text[start:], re.M)
    end = start + close.start() if close else len(text)
    return text[start:end], start


def redact_text(text: str, known_secrets: Iterable[str] = ()) -> str:
    """`text` (a whole prompt file) with every literal key of its front matter replaced by
    `<redacted>`, and any of `known_secrets` (e.g. the environment's keys) wherever it
    stands. Should a key survive (YAML this reader cannot place), the front matter is
    withheld whole rather than stored with it."""
    located = front_matter_text(text)
    secrets = find_secrets(*located[:1], first_line=1) if located else []
    redacted = text
    if located is not None:
        front, offset = located
        for secret in sorted(secrets, key=lambda s: s.start, reverse=True):
            span = front[secret.start : secret.end]
            replacement = REDACTED + ("\n" if secret.block and span.endswith("\n") else "")
            start, end = offset + secret.start, offset + secret.end
            redacted = redacted[:start] + replacement + redacted[end:]
    leftovers = [s.value for s in secrets] + [k for k in known_secrets if len(k) >= 8]
    for value in leftovers:
        redacted = redacted.replace(value, REDACTED)
    if located is not None and _still_holds(redacted, [s.value for s in secrets]):
        front, offset = located
        withheld = "# front matter withheld: it holds a key\n"
        redacted = text[:offset] + withheld + text[offset + len(front) :]
        for value in leftovers:
            redacted = redacted.replace(value, REDACTED)
    return redacted


def _still_holds(text: str, values: list[str]) -> bool:
    """Whether any part of a key (a folded key's lines are apart in the text) remains."""
    for value in values:
        for piece in re.split(r"\s+", value):
            if len(piece) >= MIN_SECRET_CHARS and piece in text:
                return True
    located = front_matter_text(text)
    return bool(located and find_secrets(located[0]))


# ---------------------------------------------------------------------------- values


def scrub_secrets(value: Any) -> Any:
    """A copy of `value` without key-like entries and literal keys: what may be stored."""
    if isinstance(value, Mapping):
        return {str(k): scrub_secrets(v) for k, v in value.items() if not is_secret_name(str(k))}
    if isinstance(value, list | tuple):
        return [scrub_secrets(v) for v in value]
    if isinstance(value, str) and is_literal_secret(value, False):
        return REDACTED
    return value


def secret_values(value: Any, under_secret_name: bool = False) -> list[str]:
    """Every key held in `value` (a config): strings under key-like names, and key shapes."""
    if isinstance(value, Mapping):
        return [
            found
            for k, v in value.items()
            for found in secret_values(v, under_secret_name or is_secret_name(str(k)))
        ]
    if isinstance(value, list | tuple):
        return [found for v in value for found in secret_values(v, under_secret_name)]
    if isinstance(value, str) and is_literal_secret(value, under_secret_name):
        return [value.strip()]
    return []


def redact_values(text: str, secrets: Iterable[str]) -> str:
    """`text` with every one of `secrets` replaced by `<redacted>` (an error may echo a key)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def hash_secrets(value: Any, under_secret_name: bool = False) -> Any:
    """A copy of `value` with every key replaced by its SHA-256: a cache key built from it
    differs between two keys without holding either."""
    if isinstance(value, Mapping):
        return {
            str(k): hash_secrets(v, under_secret_name or is_secret_name(str(k)))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [hash_secrets(v, under_secret_name) for v in value]
    if under_secret_name and value is not None and not isinstance(value, bool | int | float):
        return "sha256:" + hashlib.sha256(str(value).encode("utf-8", "surrogatepass")).hexdigest()
    if isinstance(value, str) and looks_like_key(value):
        return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return value
