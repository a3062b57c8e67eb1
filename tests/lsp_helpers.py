"""Shared helpers for end-to-end tests that drive `prompt-lsp serve` over stdio with pytest-lsp.

In a test module:

    from lsp_helpers import EditorClient, editor_client, SAMPLE_PROMPT, SAMPLE_EXAMPLES

    pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")
    client = editor_client()  # one server per test, once per capability set in CLIENTS

    async def test_something(client: EditorClient):
        uri = await client.open("news.prompt", SAMPLE_PROMPT)  # written to disk, diagnostics awaited
        pos = client.position_of(uri, "{{ article", offset=3)    # in the negotiated encoding
        result = await client.text_document_definition_async(...)

`client.root` is the test's workspace folder (a tmp_path, also the LSP root). Positions and
lengths are in the encoding the server chose (`client.encoding`: utf-16 for VS Code and
Neovim 0.10, utf-8 for Neovim 0.11), so non-ASCII text is exercised honestly.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.protocol import default_converter
from pygls.uris import from_fs_path, to_fs_path
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

SERVER_COMMAND = [sys.executable, "-m", "prompt_lsp", "serve"]
# Capability sets bundled with pytest-lsp: utf-16 (VS Code, Neovim 0.10) and utf-8 (Neovim 0.11);
# VS Code takes `documentChanges` and folding limits, Neovim 0.10 has no folding capability.
CLIENTS = ("neovim@v0.10.0", "neovim@v0.11.0", "visual_studio_code@v1.65.2")
TIMEOUT = 20.0  # seconds for a server answer or notification (a loaded CI machine is slow)

SAMPLE_PROMPT = """\
---
name: summarize-news
model: openai/gpt-4o-mini
config:
  temperature: 0
  max_tokens: 120
input:
  schema:
    article: string, the article to summarize
    sentences?: integer, how many sentences
  default:
    sentences: 3
examples: news.examples.jsonl
metrics:
  - rougeL
---
system:
You are a careful news editor.
user:
Summarize the following article in {{ sentences }} sentences.
{% for paragraph in article | split("\\n\\n") %}
<start>{{ paragraph | trim }}<end>
{% endfor %}
Article: {{ article }}
"""

SAMPLE_EXAMPLES = """\
{"input": {"article": "Rain fell on Tuesday.", "sentences": 1}, "expected": "It rained."}
{"id": "two", "input": {"article": "Markets rose.\\n\\nBonds fell."}, "expected": "Mixed day."}
"""


class EditorClient(LanguageClient):
    """A pytest-lsp client that behaves like an editor: it keeps the text of the documents it
    opened, answers the server's requests (applyEdit, refreshes, registrations) and records them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = ""  # the capability set, e.g. "neovim@v0.10.0"
        self.root = Path.cwd()
        self.encoding = types.PositionEncodingKind.Utf16
        self.server_capabilities: types.ServerCapabilities | None = None
        self.texts: dict[str, str] = {}  # open documents
        self.versions: dict[str, int] = {}
        self.published: dict[str, list[types.PublishDiagnosticsParams]] = {}
        self.applied_edits: list[types.ApplyWorkspaceEditParams] = []
        self.registrations: list[types.Registration] = []
        self.refreshes: Counter[str] = Counter()
        self._published_event = asyncio.Event()

    @classmethod
    def create(cls) -> EditorClient:
        client = cls(converter_factory=default_converter)
        defaults = dict(DEFAULT_CLIENT_FEATURES)
        defaults.pop(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS, None)
        register_lsp_features(client, defaults)
        handlers = {
            types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: client._on_publish,
            types.WORKSPACE_APPLY_EDIT: client._on_apply_edit,
            types.CLIENT_REGISTER_CAPABILITY: client._on_register,
            types.CLIENT_UNREGISTER_CAPABILITY: client._on_unregister,
        }
        for method in (
            types.WORKSPACE_CODE_LENS_REFRESH,
            types.WORKSPACE_INLAY_HINT_REFRESH,
            types.WORKSPACE_SEMANTIC_TOKENS_REFRESH,
            types.WORKSPACE_INLINE_VALUE_REFRESH,
            types.WORKSPACE_FOLDING_RANGE_REFRESH,
        ):
            handlers[method] = client._refresh_handler(method)
        for method, handler in handlers.items():
            client.feature(method)(_plain(handler))
        return client

    # ------------------------------------------------------------ session

    async def start_session(
        self,
        spec: str,
        root: Path,
        *,
        initialization_options: Any = None,
        settings: dict[str, Any] | None = None,
        tweak: Callable[[types.ClientCapabilities], None] | None = None,
    ) -> types.InitializeResult:
        """Initialize as the editor `spec` with `root` as the workspace folder. `settings` is
        the `promptLsp` configuration section; `tweak` may change the capabilities first."""
        self.spec, self.root = spec, root
        capabilities = client_capabilities(spec)
        if tweak is not None:
            tweak(capabilities)
        if settings is not None:
            self.set_configuration(settings, section="promptLsp")
        uri = uri_of(root)
        result = await asyncio.wait_for(
            self.initialize_session(
                types.InitializeParams(
                    capabilities=capabilities,
                    root_uri=uri,
                    workspace_folders=[types.WorkspaceFolder(uri=uri, name=root.name)],
                    initialization_options=initialization_options,
                )
            ),
            TIMEOUT,
        )
        self.server_capabilities = result.capabilities
        self.encoding = result.capabilities.position_encoding or types.PositionEncodingKind.Utf16
        return result

    # ------------------------------------------------------------ documents

    def path(self, name: str | Path) -> Path:
        return name if isinstance(name, Path) and name.is_absolute() else self.root / name

    def write(self, name: str | Path, text: str) -> Path:
        """Write a file into the workspace (not opened)."""
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="")
        return path

    async def open(
        self,
        name: str | Path,
        text: str | None = None,
        *,
        language_id: str | None = None,
        wait: bool | None = None,
    ) -> str:
        """Open a workspace file (writing `text` to disk first when given) and return its URI.
        For a `.prompt` file, waits for the diagnostics of this version unless `wait=False`."""
        path = self.path(name)
        if text is None:
            text = path.read_text(encoding="utf-8")
        else:
            self.write(path, text)
        uri = uri_of(path)
        is_prompt = path.suffix in (".prompt", ".prompty")
        self.texts[uri], self.versions[uri] = text, 1
        self.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(
                    uri=uri,
                    language_id=language_id or ("prompt" if is_prompt else _language(path)),
                    version=1,
                    text=text,
                )
            )
        )
        if wait if wait is not None else is_prompt:
            await self.wait_for_diagnostics(uri, 1)
        return uri

    async def change(self, uri: str, text: str, *, wait: bool = True) -> int:
        """Replace the whole text of an open document; returns the new version."""
        version = self.versions[uri] + 1
        self.texts[uri], self.versions[uri] = text, version
        self.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        if wait and uri.endswith((".prompt", ".prompty")):
            await self.wait_for_diagnostics(uri, version)
        return version

    def close(self, uri: str) -> None:
        self.texts.pop(uri, None)
        self.versions.pop(uri, None)
        self.text_document_did_close(
            types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
        )

    async def wait_for_diagnostics(
        self, uri: str, version: int | None = None, timeout: float = TIMEOUT
    ) -> list[types.Diagnostic]:
        """The diagnostics published for `uri` (for `version` when given, else the next ones)."""
        seen = len(self.published.get(uri, []))

        def found() -> types.PublishDiagnosticsParams | None:
            for params in self.published.get(uri, [])[0 if version is not None else seen :]:
                if version is None or params.version == version:
                    return params
            return None

        async def wait() -> list[types.Diagnostic]:
            while (params := found()) is None:
                self._published_event.clear()
                await self._published_event.wait()
            return list(params.diagnostics)

        return await asyncio.wait_for(wait(), timeout)

    def text_of(self, uri: str) -> str:
        """The editor's text of `uri`: the open text, else the file on disk."""
        if uri in self.texts:
            return self.texts[uri]
        return Path(to_fs_path(uri)).read_text(encoding="utf-8")

    def position_of(
        self, uri: str, needle: str, *, nth: int = 0, offset: int = 0
    ) -> types.Position:
        """The client position of the `nth` occurrence of `needle` in the document, plus
        `offset` code points."""
        return position_of(self.text_of(uri), needle, self.encoding, nth=nth, offset=offset)

    def range_of(self, uri: str, needle: str, *, nth: int = 0) -> types.Range:
        start = self.position_of(uri, needle, nth=nth)
        end = self.position_of(uri, needle, nth=nth, offset=len(needle))
        return types.Range(start, end)

    def apply(self, edit: types.WorkspaceEdit) -> dict[str, str]:
        """The texts `edit` produces (not saved, not sent), keyed by URI. Checks what an editor
        checks: versions of open documents, and that edits do not overlap."""
        results: dict[str, str] = {}
        for uri, version, edits in workspace_edit_files(edit):
            if version is not None:
                assert self.versions.get(uri) == version, f"stale edit for {uri}"
            text = results.get(uri, self.text_of(uri))
            results[uri] = apply_text_edits(text, edits, self.encoding)
        return results

    # ------------------------------------------------------------ server requests

    def _on_publish(self, params: types.PublishDiagnosticsParams) -> None:
        self.diagnostics[params.uri] = params.diagnostics
        self.published.setdefault(params.uri, []).append(params)
        self._published_event.set()

    def _on_apply_edit(
        self, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        """Apply like an editor: open documents change (and the server hears it), others are
        written to disk."""
        self.applied_edits.append(params)
        try:
            results = self.apply(params.edit)
        except (AssertionError, ValueError) as err:
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason=str(err))
        for uri, text in results.items():
            if uri in self.texts:
                version = self.versions[uri] + 1
                self.texts[uri], self.versions[uri] = text, version
                self.text_document_did_change(
                    types.DidChangeTextDocumentParams(
                        text_document=types.VersionedTextDocumentIdentifier(uri, version),
                        content_changes=[types.TextDocumentContentChangeWholeDocument(text)],
                    )
                )
            else:
                Path(to_fs_path(uri)).write_text(text, encoding="utf-8", newline="")
        return types.ApplyWorkspaceEditResult(applied=True)

    def _on_register(self, params: types.RegistrationParams) -> None:
        self.registrations.extend(params.registrations)

    def _on_unregister(self, params: types.UnregistrationParams) -> None:
        gone = {u.id for u in params.unregisterations}
        self.registrations = [r for r in self.registrations if r.id not in gone]

    def _refresh_handler(self, method: str):
        def refresh(params: None) -> None:
            self.refreshes[method] += 1

        return refresh


def _plain(handler: Any) -> Any:
    """pygls marks handlers with attributes, which a bound method cannot take."""

    def handle(params: Any) -> Any:
        return handler(params)

    return handle


def editor_client(
    clients: Sequence[str] = CLIENTS,
    *,
    settings: dict[str, Any] | None = None,
    initialization_options: Any = None,
    tweak: Callable[[types.ClientCapabilities], None] | None = None,
    server_command: Sequence[str] = SERVER_COMMAND,
):
    """A fixture (assign it to a module-level name) giving an initialized `EditorClient` per
    test, parametrized over the capability sets `clients`, rooted in the test's tmp_path.
    `settings` is the `promptLsp` section the client answers `workspace/configuration` with;
    `tweak(capabilities)` adjusts the announced capabilities (e.g. to drop a feature)."""

    @pytest_lsp.fixture(
        config=ClientServerConfig(
            server_command=list(server_command), client_factory=EditorClient.create
        ),
        params=list(clients),
        ids=[c.replace("visual_studio_code", "vscode").replace("@v", "-") for c in clients],
    )
    async def fixture(lsp_client: EditorClient, request: pytest.FixtureRequest, tmp_path: Path):
        (tmp_path / ".git").mkdir(exist_ok=True)  # the workspace root for `.prompt-lsp/`
        await lsp_client.start_session(
            request.param,
            tmp_path,
            settings=settings,
            initialization_options=initialization_options,
            tweak=tweak,
        )
        yield
        await asyncio.wait_for(lsp_client.shutdown_session(), TIMEOUT)

    return fixture


# ---------------------------------------------------------------- positions and edits


def uri_of(path: Path) -> str:
    return from_fs_path(str(path)) or path.as_uri()


def _language(path: Path) -> str:
    return {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".yaml": "yaml", ".yml": "yaml"}.get(
        path.suffix, "plaintext"
    )


def _units(text: str, encoding: str) -> int:
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8"))
    if encoding == types.PositionEncodingKind.Utf16:
        return len(text.encode("utf-16-le")) // 2
    return len(text)


def _code_points(line: str, units: int, encoding: str) -> int:
    count = 0
    for index, char in enumerate(line):
        if count >= units:
            return index
        count += _units(char, encoding)
    return len(line)


def position_of(
    text: str, needle: str, encoding: str = "utf-16", *, nth: int = 0, offset: int = 0
) -> types.Position:
    """The position of the `nth` occurrence of `needle` in `text` (plus `offset` code points)
    in `encoding` units."""
    index = -1
    for _ in range(nth + 1):
        index = text.find(needle, index + 1)
        if index < 0:
            raise ValueError(f"{needle!r} occurs fewer than {nth + 1} times")
    index += offset
    before = text[:index]
    line = before.count("\n")
    column = before[before.rfind("\n") + 1 :]
    return types.Position(line, _units(column, encoding))


def offset_of(text: str, pos: types.Position, encoding: str = "utf-16") -> int:
    lines = text.splitlines(keepends=True)
    if pos.line >= len(lines):
        return len(text)
    start = sum(len(line) for line in lines[: pos.line])
    content = lines[pos.line].rstrip("\r\n")
    return start + _code_points(content, pos.character, encoding)


def apply_text_edits(text: str, edits: Iterable[types.TextEdit], encoding: str = "utf-16") -> str:
    """`text` with `edits` applied (positions in `encoding`). Overlapping edits are an error."""
    spans = sorted(
        (
            offset_of(text, e.range.start, encoding),
            offset_of(text, e.range.end, encoding),
            e.new_text,
        )
        for e in edits
    )
    for (_, end, _), (start, _, _) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise ValueError("overlapping text edits")
    for start, end, new_text in reversed(spans):
        text = text[:start] + new_text + text[end:]
    return text


def workspace_edit_files(
    edit: types.WorkspaceEdit,
) -> list[tuple[str, int | None, list[types.TextEdit]]]:
    """(uri, version or None, edits) per file of a WorkspaceEdit, whichever form it takes."""
    files: list[tuple[str, int | None, list[types.TextEdit]]] = []
    for change in edit.document_changes or []:
        if not isinstance(change, types.TextDocumentEdit):
            raise ValueError(f"unsupported resource operation {change!r}")
        edits = [e for e in change.edits if isinstance(e, types.TextEdit)]
        files.append((change.text_document.uri, change.text_document.version, edits))
    for uri, edits in (edit.changes or {}).items():
        files.append((uri, None, list(edits)))
    return files


def decode_semantic_tokens(
    data: Sequence[int], legend: types.SemanticTokensLegend
) -> list[tuple[int, int, int, str, set[str]]]:
    """(line, start, length, type, modifiers) per token of relative-encoded `data`."""
    assert len(data) % 5 == 0, "semantic token data is not a multiple of 5"
    tokens = []
    line = start = 0
    for i in range(0, len(data), 5):
        delta_line, delta_start, length, token_type, bits = data[i : i + 5]
        line += delta_line
        start = start + delta_start if delta_line == 0 else delta_start
        modifiers = {m for n, m in enumerate(legend.token_modifiers) if bits & (1 << n)}
        tokens.append((line, start, length, legend.token_types[token_type], modifiers))
    return tokens
