"""Completion: variables, filters, tests, tags, special tokens, role markers, front matter keys,
model ids, metric names and examples file paths. Every item replaces the partly typed word."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from lsprotocol import types

from prompt_lsp.catalog.gguf import model_control_tokens
from prompt_lsp.catalog.metrics import METRICS
from prompt_lsp.catalog.models import complete_models
from prompt_lsp.catalog.tokens import (
    SEED_TOKENS,
    all_known_tokens,
    family_for_model,
    file_tokens,
    token_pairs,
)
from prompt_lsp.evaluation.api import load_examples
from prompt_lsp.format.examples import FORMATS
from prompt_lsp.format.keys import SCHEMA_TYPES, SECTIONS
from prompt_lsp.format.model import Position, PromptDocument
from prompt_lsp.format.template import environment
from prompt_lsp.server.context import KEY_LINE, in_front_matter, yaml_path_at
from prompt_lsp.server.server import PromptServer, contained
from prompt_lsp.server.state import DocumentState

TRIGGERS = ["{", "%", "|", "<", "[", ":", " ", "/"]
JINJA_TAGS = {
    "if": "Conditional: `{% if cond %}…{% elif %}…{% else %}…{% endif %}`",
    "for": "Loop: `{% for item in items %}…{% endfor %}`; `loop.index`, `loop.first`… inside",
    "set": "Assign a variable: `{% set name = value %}`",
    "macro": "Define a reusable template function",
    "call": "Call a macro with a body",
    "filter": "Apply a filter to a block",
    "raw": "Output the block without Jinja processing",
    "with": "Open an inner scope with its own variables",
    "include": "Insert another template",
    "else": "The other branch of an if or for",
    "elif": "Another condition of an if",
    "endif": "Close an if block",
    "endfor": "Close a for block",
    "endmacro": "Close a macro",
    "endset": "Close a block set",
    "endraw": "Close a raw block",
    "endwith": "Close a with block",
    "endfilter": "Close a filter block",
    "endcall": "Close a call block",
}
ROLE_DOCS = {
    "system": "Starts the system message: instructions the model follows throughout.",
    "user": "Starts a user message: what the model answers.",
    "assistant": "Starts an assistant message: a model turn, e.g. a few-shot answer.",
}
MODEL_LIMIT = 100
LOCAL_DOC = "Bound in the template before the cursor (`{% for %}`, `{% set %}` or a macro)."
LOOP_DOC = (
    "The enclosing `{% for %}` loop: `loop.index`, `loop.index0`, `loop.first`, `loop.last`,"
    " `loop.length`, `loop.cycle(…)`."
)
SCHEMA_TYPE_DOCS = {
    "string": "Text.",
    "integer": "A whole number.",
    "number": "Any number.",
    "boolean": "`true` or `false`.",
    "array": "A list: `array(string)` or `name(array): item type`.",
    "object": "A mapping: `name(object):` with its fields indented below.",
    "any": "Any value: not checked.",
}


def register(ls: PromptServer) -> None:
    @ls.feature(
        types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=TRIGGERS)
    )
    @contained(default=None)
    def completion(ls: PromptServer, params: types.CompletionParams) -> types.CompletionList | None:
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        pos = state.positions.from_client(params.position)
        invoked = (
            params.context is None
            or params.context.trigger_kind == types.CompletionTriggerKind.Invoked
        )
        return complete(state, pos, invoked, ls.settings.default_model)


def complete(
    state: DocumentState, pos: Position, invoked: bool, default_model: str | None
) -> types.CompletionList | None:
    doc = state.doc
    line_text = doc.lines[pos.line] if pos.line < len(doc.lines) else ""
    prefix = line_text[: pos.character]
    builder = _Items(state, pos)
    if in_front_matter(doc, pos.line):
        _front_matter(builder, doc, state.path, pos, prefix)
    elif pos.line >= doc.body_start_line:
        _body(builder, state, pos, prefix, invoked, default_model)
    if not builder.items:
        return None
    return types.CompletionList(is_incomplete=builder.incomplete, items=builder.items)


class _Items:
    def __init__(self, state: DocumentState, pos: Position) -> None:
        self.state = state
        self.pos = pos
        self.items: list[types.CompletionItem] = []
        self.incomplete = False
        self._ranges: dict[int, types.Range] = {}  # by typed length: items share their range

    def _range(self, typed_length: int) -> types.Range:
        rng = self._ranges.get(typed_length)
        if rng is None:
            start = Position(self.pos.line, max(self.pos.character - typed_length, 0))
            rng = types.Range(
                self.state.positions.to_client(start), self.state.positions.to_client(self.pos)
            )
            self._ranges[typed_length] = rng
        return rng

    def add(
        self,
        label: str,
        kind: types.CompletionItemKind,
        typed: str,
        detail: str = "",
        doc: str = "",
        insert: str | None = None,
        sort: str | None = None,
    ) -> None:
        """`typed` is the text already typed that the item replaces (on the cursor's line)."""
        rng = self._range(len(typed.rsplit("\n", 1)[-1]))
        self.items.append(
            types.CompletionItem(
                label=label,
                kind=kind,
                detail=detail or None,
                documentation=types.MarkupContent(types.MarkupKind.Markdown, doc) if doc else None,
                text_edit=types.TextEdit(rng, insert if insert is not None else label),
                filter_text=label if insert is None else insert,
                sort_text=sort,
            )
        )


# ---------------------------------------------------------------- front matter

_VALUE = re.compile(r"^(?P<indent>\s*)(?P<dash>-\s+)?(?P<key>[\w?]+)\s*:\s+(?P<value>.*)$")
_KEY_TYPED = re.compile(r"^(?P<indent>\s*)(?P<dash>-\s+)?(?P<word>\w*)$")


def _front_matter(
    b: _Items, doc: PromptDocument, path: Path | None, pos: Position, prefix: str
) -> None:
    value = _VALUE.match(prefix)
    if value:
        indent = len(value.group("indent")) + len(value.group("dash") or "")
        parent = yaml_path_at(doc.lines, pos.line, indent)
        _front_matter_value(b, doc, path, parent, value.group("key"), value.group("value"))
        return
    typed = _KEY_TYPED.match(prefix)
    if not typed:
        return
    indent = len(typed.group("indent")) + len(typed.group("dash") or "")
    parent = yaml_path_at(doc.lines, pos.line, indent)
    word = typed.group("word")
    if parent == ("metrics",) and typed.group("dash"):
        _metric_items(b, word)
    elif parent == ("input", "schema"):
        for name in sorted(doc.used_variable_names - doc.declared_names):
            b.add(
                name,
                types.CompletionItemKind.Variable,
                word,
                "used in the template, not declared",
                f"Declare `{name}` as an input: `{name}: type, description`.",
                insert=f"{name}: string, ",
            )
    elif parent in SECTIONS:
        present = {e.path[-1] for e in doc.entries if e.path[:-1] == parent}
        present |= _keys_written(doc, parent, indent, pos.line)
        for spec in SECTIONS[parent].values():
            if spec.name in present:
                continue
            doc_text = spec.doc + (f"\n\n```yaml\n{spec.example}\n```" if spec.example else "")
            b.add(
                spec.name,
                types.CompletionItemKind.Property,
                word,
                spec.kind,
                doc_text,
                insert=f"{spec.name}: ",
            )


def _keys_written(doc: PromptDocument, parent: tuple[str, ...], indent: int, skip: int) -> set[str]:
    """Keys written in the `parent` block, read from the lines: while a key is being typed the
    YAML does not parse, and the keys already there should still not be offered again."""
    end = doc.body_start_line - 1 if doc.front_matter_closed else len(doc.lines)
    keys = set()
    for line in range(1, min(end, len(doc.lines))):
        match = KEY_LINE.match(doc.lines[line])
        if line == skip or not match:
            continue
        own_indent = len(match.group("indent")) + len(match.group("dash") or "")
        if own_indent == indent and yaml_path_at(doc.lines, line, indent) == parent:
            keys.add(match.group("key").rstrip("?"))
    return keys


def _front_matter_value(
    b: _Items, doc: PromptDocument, path: Path | None, parent: tuple, key: str, typed: str
) -> None:
    if parent == () and key == "model":
        _model_items(b, typed.strip())
    elif parent == () and key == "examples":
        _path_items(b, path, typed.strip())
    elif parent[:1] == ("metrics",) and key == "name":
        _metric_items(b, typed.strip())
    elif parent == ("input", "schema"):
        word = typed.strip()
        if "," not in word:
            for type_name in SCHEMA_TYPES[:7]:
                b.add(
                    type_name,
                    types.CompletionItemKind.TypeParameter,
                    word,
                    "Picoschema type",
                    SCHEMA_TYPE_DOCS.get(type_name, f"Picoschema type `{type_name}`."),
                )
    elif parent == ("eval",) and key == "cache" or parent == ("config",) and key == "stream":
        for value in ("true", "false"):
            b.add(
                value, types.CompletionItemKind.Value, typed.strip(), "boolean", f"`{key}: {value}`"
            )


def _model_items(b: _Items, typed: str) -> None:
    models = complete_models(typed, limit=MODEL_LIMIT)
    b.incomplete = True  # the list is cut: ask again as the user types
    for rank, info in enumerate(models):
        b.add(
            info.id,
            types.CompletionItemKind.Value,
            typed,
            info.provider,
            info.describe(),
            sort=f"{rank:04d}",
        )


def _metric_items(b: _Items, typed: str) -> None:
    for name, info in METRICS.items():
        b.add(name, types.CompletionItemKind.EnumMember, typed, "metric", info.description)


def _path_items(b: _Items, prompt_path: Path | None, typed: str) -> None:
    if prompt_path is None:
        return
    base = prompt_path.parent
    folder_part, _, _ = typed.rpartition("/")
    folder = base / folder_part if folder_part else base
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)[:500]
    except OSError:
        return
    for entry in entries:
        relative = f"{folder_part}/{entry.name}" if folder_part else entry.name
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            b.add(
                relative + "/",
                types.CompletionItemKind.Folder,
                typed,
                "folder",
                f"`{relative}/`, relative to this prompt's folder",
            )
        elif (kind := FORMATS.get(Path(entry.name).suffix.lower())) is not None:
            b.add(
                relative,
                types.CompletionItemKind.File,
                typed,
                "examples file",
                f"`{relative}` ({kind.upper()}), relative to this prompt's folder",
            )


# ---------------------------------------------------------------- body

_TOKEN_TYPED = re.compile(r"(<\|[\w|]*|<</?\w*|</?[\w\-]*|\[/?\w*)$")
_ROLE_TYPED = re.compile(r"^\s*(\w*)$")


def _body(
    b: _Items,
    state: DocumentState,
    pos: Position,
    prefix: str,
    invoked: bool,
    default_model: str | None,
) -> None:
    doc = state.doc
    jinja = _open_jinja(doc, pos)
    if jinja is not None:
        _jinja_items(b, state, pos, *jinja)
        return
    token = _TOKEN_TYPED.search(prefix)
    if token:
        _token_items(b, doc, state.path, pos, token.group(), default_model)
        return
    role = _ROLE_TYPED.match(prefix)
    if role and (role.group(1) or invoked) and not doc.lines[pos.line][pos.character :].strip():
        for name, text in ROLE_DOCS.items():
            if name.startswith(role.group(1).lower()):
                b.add(
                    f"{name}:", types.CompletionItemKind.Keyword, role.group(1), "role marker", text
                )


def _open_jinja(doc: PromptDocument, pos: Position) -> tuple[str, str] | None:
    """(opener, text typed since it) when the cursor is inside an unclosed `{{` or `{%`."""
    first = max(doc.body_start_line, pos.line - 20)  # an expression spans a few lines at most
    before = "\n".join(doc.lines[first : pos.line] + [doc.lines[pos.line][: pos.character]])
    opened = max(before.rfind("{{"), before.rfind("{%"))
    closed = max(before.rfind("}}"), before.rfind("%}"))
    if opened < 0 or closed > opened:
        return None
    return before[opened : opened + 2], before[opened + 2 :]


def _jinja_items(b: _Items, state: DocumentState, pos: Position, opener: str, inner: str) -> None:
    env = environment()
    if match := re.search(r"\|\s*(\w*)\Z", inner):
        for name in sorted(env.filters):
            b.add(
                name,
                types.CompletionItemKind.Function,
                match.group(1),
                "filter",
                _first_doc_line(env.filters[name]),
            )
    elif match := re.search(r"\bis\s+(?:not\s+)?(\w*)\Z", inner):
        for name in sorted(env.tests):
            b.add(
                name,
                types.CompletionItemKind.Function,
                match.group(1),
                "test",
                _first_doc_line(env.tests[name]),
            )
    elif opener == "{%" and (match := re.fullmatch(r"-?\s*(\w*)", inner)):
        for name, text in JINJA_TAGS.items():
            b.add(name, types.CompletionItemKind.Keyword, match.group(1), "tag", text)
    elif re.search(r"\.\s*\w*\Z", inner):
        return  # attribute access: nothing known about the value's shape
    elif match := re.search(r"(\w*)\Z", inner):
        _variable_items(b, state, pos, match.group(1))


def _first_doc_line(func: object) -> str:
    text = (getattr(func, "__doc__", None) or "").strip()
    return " ".join(text.split("\n\n")[0].split()) or "Built into Jinja."


def _variable_items(b: _Items, state: DocumentState, pos: Position, typed: str) -> None:
    doc = state.doc
    seen: set[str] = set()
    for field in doc.schema:
        detail = f"{field.type}{' (optional)' if field.optional else ''}"
        default = (
            f"\n\nDefault: `{doc.defaults[field.name]!r}`" if field.name in doc.defaults else ""
        )
        b.add(
            field.name,
            types.CompletionItemKind.Variable,
            typed,
            detail,
            (field.description or "input variable") + default,
            sort="0",
        )
        seen.add(field.name)
    for name, value in doc.defaults.items():
        if name not in seen:
            b.add(
                name,
                types.CompletionItemKind.Variable,
                typed,
                "input (default)",
                f"Default: `{value!r}`",
                sort="0",
            )
            seen.add(name)
    if not doc.has_schema and not doc.defaults:
        examples = load_examples(doc, state.path)
        for name in sorted(examples.variable_names if examples else ()):
            if name not in seen:
                b.add(
                    name,
                    types.CompletionItemKind.Variable,
                    typed,
                    "input (from the examples)",
                    "Given by the examples (there is no `input.schema`).",
                    sort="0",
                )
                seen.add(name)
    for name in _locals_in_scope(doc, pos):
        if name not in seen:
            b.add(
                name,
                types.CompletionItemKind.Variable,
                typed,
                "local",
                LOOP_DOC if name == "loop" else LOCAL_DOC,
                sort="1",
            )
            seen.add(name)


def _locals_in_scope(doc: PromptDocument, pos: Position) -> Iterable[str]:
    """Names bound by `for`/`set`/`macro` before the cursor, in blocks that hold the cursor."""
    enclosing = [block for block in doc.blocks if block.range.contains(pos)]
    closed = [
        block for block in doc.blocks if not block.range.contains(pos) and block.range.end < pos
    ]
    names: list[str] = []
    for use in doc.names:
        if use.kind != "local" or use.range.start >= pos:
            continue
        if any(block.range.contains(use.range.start) for block in closed):
            continue  # bound inside a block that has ended
        names.append(use.name)
    if any(block.tag == "for" for block in enclosing):
        names.append("loop")
    return dict.fromkeys(names)


def _token_items(
    b: _Items,
    doc: PromptDocument,
    state_path: Path | None,
    pos: Position,
    typed: str,
    default_model: str | None,
) -> None:
    model = doc.settings.model_or_default(default_model)
    family = family_for_model(model)
    declared = list(doc.settings.tokens)
    offered: set[str] = set()

    def offer(text: str, meaning: str, origin: str, rank: str) -> None:
        if text in offered or not text.startswith(typed[:1]):
            return
        offered.add(text)
        b.add(text, types.CompletionItemKind.Constant, typed, origin, meaning, sort=f"{rank}{text}")

    for closer in _open_closers(doc, pos):
        offer(closer, "Closes the token opened before.", "closing token", "0")
    if family is not None:
        for token in family.tokens:
            offer(token.text, token.meaning, f"{family.name} token", "1")
    base = state_path.parent if state_path is not None else None
    for text in model_control_tokens(model, base):
        offer(text, f"A control token of {model}'s model file.", "model file token", "1")
    for token in file_tokens(declared):
        offer(token.text, token.meaning, "this file's tokens:", "2")
    for token in SEED_TOKENS:
        offer(token.text, token.meaning, "seed token", "3")
    for token in all_known_tokens():
        offer(token.text, token.meaning, f"{token.family} token", "4")


def _open_closers(doc: PromptDocument, pos: Position) -> list[str]:
    """Closing tokens for openers before the cursor that are not closed yet."""
    pairs = token_pairs()
    depth: dict[str, int] = {}
    closers = {close: open_ for open_, close in pairs.items()}
    for token in doc.tokens:
        if token.range.start >= pos:
            break
        text = token.text
        if text in pairs or (
            text.startswith("<") and not text.startswith(("</", "<|", "<<")) and text not in closers
        ):
            depth[text] = depth.get(text, 0) + 1
        elif text in closers and depth.get(closers[text]):
            depth[closers[text]] -= 1
        elif text.startswith("</") and depth.get("<" + text[2:]):
            depth["<" + text[2:]] -= 1
    return [pairs.get(text, "</" + text[1:]) for text, count in depth.items() if count > 0]
