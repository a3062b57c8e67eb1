"""Go to definition, find references, document highlight and rename of input variables.

A variable lives in up to five places: its uses in the template, its schema declaration, its
`input.default` key, the keys of inline examples and the keys (or CSV header cell) of the
examples file. Rename edits all of them as one WorkspaceEdit.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import from_fs_path

from prompt_lsp.evaluation.api import MAX_EXAMPLES_BYTES
from prompt_lsp.format.examples import FORMATS, RESERVED_COLUMNS, examples_path
from prompt_lsp.format.model import Position, PromptDocument, Range
from prompt_lsp.format.template import KEYWORDS
from prompt_lsp.format.text import OffsetMap, split_lines
from prompt_lsp.format.yaml_loader import BoundedLoader
from prompt_lsp.server.convert import Positions
from prompt_lsp.server.documents import fs_path
from prompt_lsp.server.server import PromptServer, contained
from prompt_lsp.server.state import DocumentState

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Names Jinja gives a meaning of its own: a variable cannot be renamed to one of these.
RESERVED_NAMES = KEYWORDS | {"loop", "self", "caller", "varargs", "kwargs", "namespace", "range"}
INPUT_KEYS = ("input", "inputs")


# ---------------------------------------------------------------- what is under the cursor


@dataclass(frozen=True)
class Target:
    """An input variable under the cursor: its name and the range of the word clicked."""

    name: str
    range: Range
    declaration: bool  # the cursor is on the schema or `input.default` key, not a template use


def variable_at(doc: PromptDocument, pos: Position) -> Target | None:
    """The input variable at `pos`: a template use, a schema declaration or a default's key."""
    for use in doc.names:
        if use.kind == "variable" and use.range.contains(pos):
            return Target(use.name, use.range, False)
    for schema_field in doc.schema:
        rng = declaration_range(doc, schema_field.range, schema_field.name)
        if rng is not None and rng.contains(pos):
            return Target(schema_field.name, rng, True)
    for name, entry in doc.default_entries.items():
        rng = declaration_range(doc, entry.key_range, name)
        if rng is not None and rng.contains(pos):
            return Target(name, rng, True)
    return None


def declaration_range(doc: PromptDocument, rng: Range | None, name: str) -> Range | None:
    """Where `name` is written at (or just after) the start of `rng`: the name alone, without
    quotes around the key or the `?` and `(type)` that follow it in Picoschema."""
    if rng is None or not 0 <= rng.start.line < len(doc.lines):
        return None
    line = doc.lines[rng.start.line]
    start = rng.start.character
    limit = rng.end.character if rng.end.line == rng.start.line else len(line)
    for match in re.finditer(rf"(?<![\w]){re.escape(name)}(?![\w])", line):
        if start <= match.start() <= max(start + 2, limit):  # 2: an opening quote or so
            return Range.of(rng.start.line, match.start(), end=match.end())
        if match.start() > limit:
            break
    return None


def declarations(doc: PromptDocument, name: str) -> list[Range]:
    """The schema declaration and the `input.default` key of `name`, where present."""
    found: list[Range] = []
    schema_field = doc.schema_field(name)
    if schema_field is not None:
        rng = declaration_range(doc, schema_field.range, name)
        if rng is not None:
            found.append(rng)
    entry = doc.default_entries.get(name)
    if entry is not None:
        rng = declaration_range(doc, entry.key_range, name)
        if rng is not None:
            found.append(rng)
    return found


def uses(doc: PromptDocument, name: str) -> list[Range]:
    return [u.range for u in doc.names if u.kind == "variable" and u.name == name]


def inline_example_keys(doc: PromptDocument, name: str) -> list[Range]:
    """The keys naming `name` in inline examples (`examples:` list, or Prompty's `sample:`)."""
    found: list[Range] = []
    for entry in doc.entries:
        path = entry.path
        if not path or path[-1] != name or entry.key_range is None:
            continue
        inline = path[0] == "examples" and isinstance(doc.settings.examples, list)
        if inline and len(path) == 4 and isinstance(path[1], int) and path[2] in INPUT_KEYS:
            pass
        elif inline and len(path) == 3 and isinstance(path[1], int):
            record = doc.entry("examples", path[1])
            value = record.value if record is not None else None
            if not isinstance(value, dict) or any(value.get(k) is not None for k in INPUT_KEYS):
                continue
            if name in RESERVED_COLUMNS:
                continue
        elif path == ("sample", name) and "examples" not in {e.path[0] for e in doc.entries}:
            pass
        else:
            continue
        rng = declaration_range(doc, entry.key_range, name)
        if rng is not None:
            found.append(rng)
    return found


def examples_value_at(doc: PromptDocument, pos: Position) -> bool:
    """`pos` is on the `examples:` key or its value, and that value names a file."""
    entry = doc.entry("examples")
    if entry is None or not isinstance(entry.value, str):
        return False
    return entry.value_range.contains(pos) or (
        entry.key_range is not None and entry.key_range.contains(pos)
    )


# ---------------------------------------------------------------- examples files


def json_key_spans(text: str) -> Iterator[tuple[tuple[Any, ...], str, int, int]]:
    """Every object key in the JSON `text`: (path of the object holding it, the key, start and
    end offsets of the key token with its quotes). Tolerates invalid JSON (best effort)."""
    # A frame: [is_object, path, current key or index, expecting a key]
    stack: list[list[Any]] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "{[":
            if stack:
                parent = stack[-1]
                path = parent[1] + (parent[2],)
            else:
                path = ()
            stack.append([char == "{", path, None if char == "{" else 0, char == "{"])
            i += 1
        elif char in "}]":
            if stack:
                stack.pop()
            i += 1
        elif char == ",":
            if stack:
                frame = stack[-1]
                if frame[0]:
                    frame[3] = True
                else:
                    frame[2] += 1
            i += 1
        elif char == ":":
            if stack:
                stack[-1][3] = False
            i += 1
        elif char == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            end = min(j + 1, n)
            if stack and stack[-1][0] and stack[-1][3]:
                token = text[i:end]
                try:
                    key = json.loads(token)
                except ValueError:
                    key = token.strip('"')
                stack[-1][2] = key
                yield stack[-1][1], str(key), i, end
            i = end
        else:
            i += 1


def _input_container(record: Any) -> tuple[str, ...] | None:
    """Where a record's input keys are, as `format.examples` reads it: under `input`/`inputs`,
    or at the top level (`()`); None when the record has no input object."""
    if not isinstance(record, dict):
        return None
    for key in INPUT_KEYS:
        if key in record:
            value = record[key]
            if value is None:
                return ()
            return (key,) if isinstance(value, dict) else None
    return ()


def _top_level_ok(container: tuple[str, ...], key: str) -> bool:
    return bool(container) or key not in RESERVED_COLUMNS


def examples_key_edits(text: str, kind: str, old: str, new: str) -> list[tuple[Range, str]]:
    """Edits renaming the input key `old` to `new` in an examples file's text of `kind`
    ("jsonl", "json", "yaml", "csv"). Ranges are in code points on `split_lines(text)`."""
    lines = split_lines(text)
    if kind == "csv":
        return _csv_edits(lines, old, new)
    if kind == "yaml":
        return _yaml_edits(lines, old, new)
    if kind == "json":
        return _json_edits(lines, old, new)
    return _jsonl_edits(lines, old, new)


def _jsonl_edits(lines: list[str], old: str, new: str) -> list[tuple[Range, str]]:
    edits: list[tuple[Range, str]] = []
    quoted = json.dumps(new)
    for number, line in enumerate(lines):
        if old not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        container = _input_container(record)
        if container is None or not _top_level_ok(container, old):
            continue
        for path, key, start, end in json_key_spans(line):
            if path == container and key == old:
                edits.append((Range.of(number, start, end=end), quoted))
    return edits


def _json_edits(lines: list[str], old: str, new: str) -> list[tuple[Range, str]]:
    text = "\n".join(lines)
    try:
        data = json.loads(text)
    except ValueError:
        return _yaml_edits(lines, old, new)  # read as YAML by `format.examples` too
    prefix: tuple[Any, ...] = ()
    if isinstance(data, dict) and isinstance(data.get("examples"), list):
        prefix, data = ("examples",), data["examples"]
    if not isinstance(data, list):
        return []
    wanted = set()
    for index, record in enumerate(data):
        container = _input_container(record)
        if container is not None and _top_level_ok(container, old):
            wanted.add(prefix + (index,) + container)
    offsets = OffsetMap(text)
    quoted = json.dumps(new)
    return [
        (Range(offsets.position(start), offsets.position(end)), quoted)
        for path, key, start, end in json_key_spans(text)
        if key == old and path in wanted
    ]


def _yaml_edits(lines: list[str], old: str, new: str) -> list[tuple[Range, str]]:
    loader = BoundedLoader("\n".join(lines))
    try:
        root = loader.get_single_node()
    except yaml.YAMLError:
        return []
    finally:
        loader.dispose()
    if isinstance(root, yaml.MappingNode):
        root = next(
            (v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "examples"),
            None,
        )
    if not isinstance(root, yaml.SequenceNode):
        return []
    edits: list[tuple[Range, str]] = []
    for item in root.value:
        if not isinstance(item, yaml.MappingNode):
            continue
        keys = {k.value: v for k, v in item.value if isinstance(k, yaml.ScalarNode)}
        mapping: yaml.Node = item
        for input_key in INPUT_KEYS:
            if input_key in keys:
                value = keys[input_key]
                if isinstance(value, yaml.MappingNode):
                    mapping = value
                elif not (isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null")):
                    mapping = None  # type: ignore[assignment]
                break
        if mapping is None or (mapping is item and old in RESERVED_COLUMNS):
            continue
        for key_node, _ in mapping.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == old:
                start, end = key_node.start_mark, key_node.end_mark
                if start.line != end.line:
                    continue
                quote = {"'": "'", '"': '"'}.get(key_node.style or "", "")
                edits.append(
                    (Range.of(start.line, start.column, end=end.column), f"{quote}{new}{quote}")
                )
    return edits


def _csv_edits(lines: list[str], old: str, new: str) -> list[tuple[Range, str]]:
    if not lines or old in RESERVED_COLUMNS:
        return []
    return [
        (Range.of(0, start, end=end), new)
        for value, start, end in csv_header_cells(lines[0])
        if value == old
    ]


def csv_header_cells(line: str) -> list[tuple[str, int, int]]:
    """The cells of a CSV header line with their spans (quotes included)."""
    cells: list[tuple[str, int, int]] = []
    i, n = 0, len(line)
    while i <= n:
        start = i
        if i < n and line[i] == '"':
            j = i + 1
            while j < n:
                if line[j] == '"':
                    if j + 1 < n and line[j + 1] == '"':
                        j += 2
                        continue
                    break
                j += 1
            end = min(j + 1, n)
            comma = line.find(",", end)
            comma = n if comma < 0 else comma
            value = next(csv.reader(io.StringIO(line[start:comma])), [""])[0]
        else:
            comma = line.find(",", i)
            comma = n if comma < 0 else comma
            end = comma
            value = line[start:end]
        cells.append((value, start, end))
        i = comma + 1
    return cells


# ---------------------------------------------------------------- rename


def check_new_name(doc: PromptDocument, old: str, new: str) -> None:
    """Raise InvalidParams (shown to the user) when `new` cannot replace `old`."""
    if not IDENTIFIER.match(new):
        raise JsonRpcInvalidParams(
            f"`{new}` is not a valid variable name: use letters, digits and `_`, "
            "not starting with a digit."
        )
    if new in RESERVED_NAMES:
        raise JsonRpcInvalidParams(f"`{new}` is a Jinja keyword and cannot name a variable.")
    if new != old and (
        new in doc.declared_names or any(u.name == new for u in doc.names if u.kind != "tag")
    ):
        raise JsonRpcInvalidParams(
            f"`{new}` is already a name in this prompt: renaming `{old}` to it would merge them."
        )


def prompt_edits(doc: PromptDocument, old: str) -> list[Range]:
    """Every range in the prompt that spells the variable `old`, sorted, without duplicates."""
    ranges = uses(doc, old) + declarations(doc, old) + inline_example_keys(doc, old)
    return sorted(set(ranges), key=lambda r: (r.start, r.end))


@dataclass
class ExamplesFile:
    uri: str
    version: int | None  # the open document's version, None when read from disk
    text: str
    kind: str


def _open_document(ls: PromptServer, path: Path) -> tuple[str, Any] | None:
    """The open document showing `path` (matched by file path, not URI spelling)."""
    try:
        wanted = path.resolve()
    except OSError:
        return None
    for uri in ls.documents.open_uris():
        try:
            path = fs_path(uri)
            if path is not None and path.resolve() == wanted:
                document = ls.documents.text_document(uri)
                return (uri, document) if document is not None else None
        except (OSError, ValueError):
            continue
    return None


def _read_examples(path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_EXAMPLES_BYTES:
            return None
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None


async def examples_file(ls: PromptServer, state: DocumentState) -> ExamplesFile | None:
    """The prompt's examples file: the editor's text when it is open, else the file on disk."""
    path = examples_path(state.doc, state.path)
    if path is None:
        return None
    kind = FORMATS.get(path.suffix.lower(), "jsonl")
    opened = _open_document(ls, path)
    if opened is not None:
        uri, document = opened
        return ExamplesFile(uri, document.version, document.source, kind)
    text = await asyncio.to_thread(_read_examples, path)
    if text is None:
        return None
    return ExamplesFile(from_fs_path(str(path)) or path.as_uri(), None, text, kind)


def _supports_document_changes(ls: PromptServer) -> bool:
    workspace = ls.client_capabilities.workspace
    edit = workspace.workspace_edit if workspace else None
    return bool(edit and edit.document_changes)


def workspace_edit(
    ls: PromptServer, files: list[tuple[str, int | None, list[types.TextEdit]]]
) -> types.WorkspaceEdit:
    """One WorkspaceEdit over several files: `documentChanges` when the client takes them."""
    files = [f for f in files if f[2]]
    if _supports_document_changes(ls):
        return types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(uri, version),
                    edits=list(edits),
                )
                for uri, version, edits in files
            ]
        )
    changes: dict[str, list[types.TextEdit]] = {}
    for uri, _, edits in files:
        changes.setdefault(uri, []).extend(edits)
    return types.WorkspaceEdit(changes=changes)


async def rename_edit(
    ls: PromptServer, state: DocumentState, old: str, new: str
) -> types.WorkspaceEdit:
    positions = state.positions
    edits = [types.TextEdit(positions.range(r), new) for r in prompt_edits(state.doc, old)]
    files: list[tuple[str, int | None, list[types.TextEdit]]] = [(state.uri, state.version, edits)]
    examples = await examples_file(ls, state)
    if examples is not None and examples.uri != state.uri:
        key_edits = await asyncio.to_thread(
            examples_key_edits, examples.text, examples.kind, old, new
        )
        other = Positions(split_lines(examples.text), ls.encoding)
        files.append(
            (
                examples.uri,
                examples.version,
                [types.TextEdit(other.range(r), text) for r, text in key_edits],
            )
        )
    return workspace_edit(ls, files)


# ---------------------------------------------------------------- handlers


def _location_link_support(ls: PromptServer) -> bool:
    text_document = ls.client_capabilities.text_document
    definition = text_document.definition if text_document else None
    return bool(definition and definition.link_support)


def _entry_span(doc: PromptDocument, name_range: Range) -> Range:
    """The whole line of a declaration, for the body of a LocationLink."""
    line = name_range.start.line
    text = doc.lines[line] if line < len(doc.lines) else ""
    indent = len(text) - len(text.lstrip())
    return Range.of(line, min(indent, name_range.start.character), end=len(text.rstrip()))


def register(ls: PromptServer) -> None:
    @ls.feature(types.TEXT_DOCUMENT_DEFINITION)
    @contained()
    def definition(
        ls: PromptServer, params: types.DefinitionParams
    ) -> list[types.Location] | list[types.LocationLink] | None:
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        doc, positions = state.doc, state.positions
        pos = positions.from_client(params.position)
        links = _location_link_support(ls)
        target = variable_at(doc, pos)
        if target is not None and not target.declaration:
            found = declarations(doc, target.name)[:1]
            if links:
                return [
                    types.LocationLink(
                        target_uri=state.uri,
                        target_range=positions.range(_entry_span(doc, rng)),
                        target_selection_range=positions.range(rng),
                        origin_selection_range=positions.range(target.range),
                    )
                    for rng in found
                ] or None
            return [types.Location(state.uri, positions.range(rng)) for rng in found] or None
        if examples_value_at(doc, pos):
            path = examples_path(doc, state.path)
            if path is None or not path.is_file():
                return None
            uri = from_fs_path(str(path)) or path.as_uri()
            start = types.Range(types.Position(0, 0), types.Position(0, 0))
            if links:
                entry = doc.entry("examples")
                assert entry is not None
                return [
                    types.LocationLink(
                        target_uri=uri,
                        target_range=start,
                        target_selection_range=start,
                        origin_selection_range=positions.range(entry.value_range),
                    )
                ]
            return [types.Location(uri, start)]
        return None

    @ls.feature(types.TEXT_DOCUMENT_REFERENCES)
    @contained()
    def references(ls: PromptServer, params: types.ReferenceParams) -> list[types.Location] | None:
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        target = variable_at(state.doc, state.positions.from_client(params.position))
        if target is None:
            return None
        found = uses(state.doc, target.name)
        if params.context.include_declaration:
            found = declarations(state.doc, target.name) + found
        return [types.Location(state.uri, state.positions.range(r)) for r in found]

    @ls.feature(types.TEXT_DOCUMENT_DOCUMENT_HIGHLIGHT)
    @contained()
    def document_highlight(
        ls: PromptServer, params: types.DocumentHighlightParams
    ) -> list[types.DocumentHighlight] | None:
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        target = variable_at(state.doc, state.positions.from_client(params.position))
        if target is None:
            return None
        positions = state.positions
        return [
            types.DocumentHighlight(positions.range(r), types.DocumentHighlightKind.Write)
            for r in declarations(state.doc, target.name)
        ] + [
            types.DocumentHighlight(positions.range(r), types.DocumentHighlightKind.Read)
            for r in uses(state.doc, target.name)
        ]

    @ls.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
    @contained()
    def prepare_rename(
        ls: PromptServer, params: types.PrepareRenameParams
    ) -> types.PrepareRenamePlaceholder | None:
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        target = variable_at(state.doc, state.positions.from_client(params.position))
        if target is None:
            return None
        return types.PrepareRenamePlaceholder(state.positions.range(target.range), target.name)

    @ls.feature(types.TEXT_DOCUMENT_RENAME)
    async def rename(ls: PromptServer, params: types.RenameParams) -> types.WorkspaceEdit | None:
        # Not `contained` as a whole: a bad new name must reach the client as an error.
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        target = _rename_target(ls, state, params.position)
        if target is None:
            raise JsonRpcInvalidParams("Only an input variable of the template can be renamed.")
        new = params.new_name.strip()
        check_new_name(state.doc, target.name, new)
        if new == target.name:
            return None
        return await _rename(ls, state, target.name, new)

    @contained()
    def _rename_target(
        ls: PromptServer, state: DocumentState, position: types.Position
    ) -> Target | None:
        return variable_at(state.doc, state.positions.from_client(position))

    @contained()
    async def _rename(
        ls: PromptServer, state: DocumentState, old: str, new: str
    ) -> types.WorkspaceEdit | None:
        return await rename_edit(ls, state, old, new)
