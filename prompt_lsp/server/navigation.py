"""Go to definition, find references, document highlight and rename of input variables.

A variable lives in up to five places: its uses in the template, its schema declaration, its
`input.default` key, the keys of inline examples and the keys (or CSV header cell) of the
examples file. Rename edits all of them as one WorkspaceEdit.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import from_fs_path

from prompt_lsp.evaluation.api import MAX_EXAMPLES_BYTES
from prompt_lsp.format.examples import FORMATS, examples_path
from prompt_lsp.format.model import PromptDocument, Range
from prompt_lsp.format.partials import PartialFiles
from prompt_lsp.format.rename import (
    Target,
    declarations,
    examples_key_edits,
    examples_value_at,
    prompt_edits,
    rename_problem,
    uses,
    variable_at,
)
from prompt_lsp.format.text import split_lines
from prompt_lsp.server.convert import Positions
from prompt_lsp.server.documents import fs_path
from prompt_lsp.server.server import PromptServer, contained
from prompt_lsp.server.state import DocumentState


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

        def text_edits() -> list[types.TextEdit]:
            other = Positions(split_lines(examples.text), ls.encoding)
            key_edits = examples_key_edits(examples.text, examples.kind, old, new)
            return [types.TextEdit(other.range(r), text) for r, text in key_edits]

        files.append((examples.uri, examples.version, await asyncio.to_thread(text_edits)))
    return workspace_edit(ls, files)


async def examples_references(
    ls: PromptServer, state: DocumentState, name: str
) -> list[types.Location]:
    """Where the examples file gives `name` (its keys, or its CSV column): the places a rename
    changes there."""
    examples = await examples_file(ls, state)
    if examples is None or examples.uri == state.uri:
        return []
    found = await asyncio.to_thread(  # a file of 5,000 examples: off the event loop
        _example_locations, examples.uri, examples.text, examples.kind, name, ls.encoding
    )
    return list(found)


@functools.lru_cache(maxsize=8)
def _example_locations(
    uri: str, text: str, kind: str, name: str, encoding: str
) -> tuple[types.Location, ...]:
    """Remembered: an editor asks again after every keystroke in the prompt."""
    spans = examples_key_edits(text, kind, name, name)
    lines = split_lines(text)
    other = Positions(lines, encoding)
    return tuple(types.Location(uri, other.range(_unquoted(lines, r))) for r, _ in spans)


def _unquoted(lines: list[str], rng: Range) -> Range:
    """A JSON key's range without its quotes (a rename replaces them; a reference is the name)."""
    line = lines[rng.start.line] if rng.start.line < len(lines) else ""
    start, end = rng.start.character, rng.end.character
    if rng.start.line == rng.end.line and end - start >= 2 and line[start] == line[end - 1] == '"':
        return Range.of(rng.start.line, start + 1, end=end - 1)
    return rng


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


def _partial_location(
    state: DocumentState, name: str, origin: Range, links: bool
) -> list[types.Location] | list[types.LocationLink] | None:
    """`{{> name}}` goes to `_name.prompt` beside the prompt."""
    where = state.doc.path or (str(state.path) if state.path else None)
    path = PartialFiles(where).path(name)
    if path is None or not path.is_file():
        return None
    uri = from_fs_path(str(path)) or path.as_uri()
    start = types.Range(types.Position(0, 0), types.Position(0, 0))
    if links:
        return [
            types.LocationLink(
                target_uri=uri,
                target_range=start,
                target_selection_range=start,
                origin_selection_range=state.positions.range(origin),
            )
        ]
    return [types.Location(uri, start)]


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
        partial = next((u for u in doc.partials if u.range.contains(pos)), None)
        if partial is not None:
            return _partial_location(state, partial.name, partial.range, links)
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
    async def references(
        ls: PromptServer, params: types.ReferenceParams
    ) -> list[types.Location] | None:
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        target = variable_at(state.doc, state.positions.from_client(params.position))
        if target is None:
            return None
        found = uses(state.doc, target.name)
        if params.context.include_declaration:
            found = declarations(state.doc, target.name) + found
        locations = [types.Location(state.uri, state.positions.range(r)) for r in found]
        return locations + await examples_references(ls, state, target.name)

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
        problem = rename_problem(state.doc, target.name, new)
        if problem is not None:
            raise JsonRpcInvalidParams(problem)
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
