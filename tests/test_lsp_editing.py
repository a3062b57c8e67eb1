"""End to end over stdio: sync and diagnostics, completion, hover, quick fixes and settings.

The tests that depend on the position encoding run for every capability set in
`lsp_helpers.CLIENTS` (utf-16 and utf-8 clients, with non-ASCII text before the positions that
matter); the others run against one editor to keep the suite fast.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Union

import pytest
from lsp_helpers import (
    TIMEOUT,
    EditorClient,
    apply_text_edits,
    editor_client,
    uri_of,
    workspace_edit_files,
)
from lsprotocol import types

pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

client = editor_client()  # every capability set
nvim = editor_client(("neovim@v0.11.0",))  # utf-8 positions
vscode = editor_client(("visual_studio_code@v1.65.2",))  # dynamic file watching


def _no_configuration(capabilities: types.ClientCapabilities) -> None:
    assert capabilities.workspace is not None
    capabilities.workspace.configuration = False


# Settings pulled with workspace/configuration.
pulled = editor_client(
    ("visual_studio_code@v1.65.2",), settings={"defaultModel": "openai/gpt-4o-mini"}
)
# A client without workspace/configuration: the settings come from initializationOptions.
DEBOUNCE_MS = 1500
pushed = editor_client(
    ("neovim@v0.10.0",),
    initialization_options={
        "promptLsp": {"defaultModel": "openai/gpt-4o-mini", "debounce": DEBOUNCE_MS}
    },
    tweak=_no_configuration,
)

PROMPT = """\
---
model: openai/gpt-4o-mini
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
Summarize in {{ sentences }} sentences.
Article: {{ article }}
"""

EXAMPLES = """\
{"input": {"article": "Rain fell on Tuesday.", "sentences": 1}, "expected": "It rained."}
{"input": {"article": "Markets rose."}, "expected": "Up."}
{"input": {"article": "Markets rose."}, "expected": "Up again."}
"""

NON_ASCII = "café ☕ 𝄞 "  # 2-byte, 3-byte and 4-byte (a utf-16 surrogate pair) characters


# ---------------------------------------------------------------- helpers


def ident(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri)


def codes(diagnostics: Sequence[types.Diagnostic]) -> list[str]:
    return [str(d.code) for d in diagnostics]


def only(diagnostics: Sequence[types.Diagnostic], code: str) -> types.Diagnostic:
    found = [d for d in diagnostics if d.code == code]
    assert len(found) == 1, (code, [(d.code, d.message) for d in diagnostics])
    return found[0]


async def open_news(client: EditorClient, text: str = PROMPT) -> str:
    client.write("news.examples.jsonl", EXAMPLES)
    return await client.open("news.prompt", text)


def send_edits(client: EditorClient, uri: str, edits: Sequence[tuple[types.Range, str]]) -> int:
    """Send incremental changes (ranges in the client's encoding, applied one after the other,
    as an editor does) and keep the client's copy of the text in step; returns the version."""
    text = client.texts[uri]
    for rng, new_text in edits:
        text = apply_text_edits(text, [types.TextEdit(rng, new_text)], client.encoding)
    version = client.versions[uri] + 1
    client.texts[uri], client.versions[uri] = text, version
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(range=rng, text=new_text)
                for rng, new_text in edits
            ],
        )
    )
    return version


async def edit(
    client: EditorClient, uri: str, edits: Sequence[tuple[types.Range, str]]
) -> list[types.Diagnostic]:
    """Send incremental changes and wait for the diagnostics of the new version."""
    version = send_edits(client, uri, edits)
    return await client.wait_for_diagnostics(uri, version)


def insert_at(pos: types.Position, text: str) -> tuple[types.Range, str]:
    return types.Range(pos, pos), text


def end_of(client: EditorClient, uri: str) -> types.Position:
    """The position after the last character of the client's text."""
    text = client.texts[uri]
    return client.position_of(uri, text, offset=len(text))


async def replace_text(client: EditorClient, uri: str, text: str) -> list[types.Diagnostic]:
    """Send the whole new text; the diagnostics of the new version."""
    version = await client.change(uri, text)
    return await client.wait_for_diagnostics(uri, version)


async def settle(
    client: EditorClient,
    uri: str,
    predicate: Callable[[list[types.Diagnostic]], bool],
    timeout: float = TIMEOUT,
) -> list[types.Diagnostic]:
    """Wait until the latest diagnostics published for `uri` satisfy `predicate` (for changes
    the server makes on its own, e.g. after pulling settings)."""

    async def wait() -> list[types.Diagnostic]:
        while True:
            latest = client.published.get(uri, [])
            if latest and predicate(list(latest[-1].diagnostics)):
                return list(latest[-1].diagnostics)
            await client.wait_for_diagnostics(uri)

    return await asyncio.wait_for(wait(), timeout)


async def complete(
    client: EditorClient, uri: str, pos: types.Position, trigger: str | None = None
) -> types.CompletionList:
    context = (
        types.CompletionContext(types.CompletionTriggerKind.Invoked)
        if trigger is None
        else types.CompletionContext(types.CompletionTriggerKind.TriggerCharacter, trigger)
    )
    result = await asyncio.wait_for(
        client.text_document_completion_async(types.CompletionParams(ident(uri), pos, context)),
        TIMEOUT,
    )
    assert isinstance(result, types.CompletionList), result
    return result


def check_items(
    items: Sequence[types.CompletionItem], pos: types.Position, typed: str
) -> dict[str, types.CompletionItem]:
    """Every item has a kind, a detail and documentation, and replaces `typed` (ASCII, just
    before the cursor `pos`) with a text edit. Returns the items by label."""
    assert items
    start = types.Position(pos.line, pos.character - len(typed))
    for item in items:
        assert item.kind is not None, item.label
        assert item.detail, item.label
        assert isinstance(item.documentation, types.MarkupContent), item.label
        assert item.documentation.value.strip(), item.label
        assert isinstance(item.text_edit, types.TextEdit), item.label
        assert item.text_edit.range == types.Range(start, pos), item.label
    return {item.label: item for item in items}


def ordered(items: Sequence[types.CompletionItem]) -> list[types.CompletionItem]:
    """As an editor shows them before filtering: by sort text, else by label."""
    return sorted(items, key=lambda i: i.sort_text if i.sort_text is not None else i.label)


async def hover(client: EditorClient, uri: str, pos: types.Position) -> types.Hover:
    result = await asyncio.wait_for(
        client.text_document_hover_async(types.HoverParams(ident(uri), pos)), TIMEOUT
    )
    assert isinstance(result, types.Hover), pos
    assert isinstance(result.contents, types.MarkupContent)
    return result


def structure_code_actions_properly(client: EditorClient) -> None:
    """lsprotocol reads any `(Command | CodeAction)` holding a `command` key as a Command, which
    mangles a CodeAction that runs a command: tell them apart by the type of `command`, as
    editors do."""
    converter = client.protocol._converter

    def structure(obj: Any, _: type) -> types.Command | types.CodeAction:
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, types.Command)
        return converter.structure(obj, types.CodeAction)

    converter.register_structure_hook(Union[types.Command, types.CodeAction], structure)  # noqa: UP007


async def actions_for(
    client: EditorClient, uri: str, diagnostic: types.Diagnostic
) -> list[types.CodeAction]:
    structure_code_actions_properly(client)
    params = types.CodeActionParams(
        ident(uri),
        diagnostic.range,
        types.CodeActionContext(diagnostics=[diagnostic], only=[types.CodeActionKind.QuickFix]),
    )
    result = await asyncio.wait_for(client.text_document_code_action_async(params), TIMEOUT)
    actions = [a for a in result or [] if isinstance(a, types.CodeAction)]
    for action in actions:
        assert action.kind == types.CodeActionKind.QuickFix
        assert action.diagnostics and action.diagnostics[0].code == diagnostic.code
        assert action.diagnostics[0].range == diagnostic.range
    return actions


def edited_text(client: EditorClient, uri: str, action: types.CodeAction) -> str:
    assert action.edit is not None, action.title
    files = workspace_edit_files(action.edit)
    assert [f[0] for f in files] == [uri]
    return client.apply(action.edit)[uri]


# ---------------------------------------------------------------- sync and diagnostics


async def test_incremental_edits_are_checked_with_their_version(client: EditorClient):
    uri = await open_news(client)
    assert client.published[uri][-1].version == 1
    # type a variable after non-ASCII text: the server applies the change in the client's units
    article_line = client.position_of(uri, "Article:")
    started = time.monotonic()
    diagnostics = await edit(client, uri, [insert_at(article_line, NON_ASCII + "{{ topic }} ")])
    assert time.monotonic() - started >= 0.12  # debounced (150 ms by default)
    undefined = only(diagnostics, "undefined-variable")
    assert undefined.range == client.range_of(uri, "topic")
    assert undefined.source == "prompt-lsp"
    assert undefined.severity == types.DiagnosticSeverity.Error
    assert "'topic'" in undefined.message
    # related information: where the inputs are declared
    (related,) = undefined.related_information or []
    assert related.location.uri == uri
    assert related.location.range == client.range_of(uri, "schema")

    # replace the name in place, in the client's units
    diagnostics = await edit(client, uri, [(client.range_of(uri, "topic"), "article")])
    assert "undefined-variable" not in codes(diagnostics)
    needle = "{{ article }} Article"
    found = await hover(client, uri, client.position_of(uri, needle, offset=4))
    assert found.range == types.Range(
        client.position_of(uri, needle, offset=3), client.position_of(uri, needle, offset=10)
    )

    # several changes in one notification apply in order; a stale version is never published
    sentences = client.range_of(uri, "sentences }}")
    version = send_edits(
        client,
        uri,
        [
            (client.range_of(uri, "café "), ""),
            (sentences, "sentence_count }}"),
        ],
    )
    assert client.texts[uri].count("sentence_count") == 1
    diagnostics = await client.wait_for_diagnostics(uri, version)
    undefined = only(diagnostics, "undefined-variable")
    assert undefined.range == client.range_of(uri, "sentence_count")
    versions = [p.version for p in client.published[uri]]
    assert versions == sorted(versions) and versions[-1] == version
    # closing clears the document's diagnostics
    client.close(uri)
    assert await client.wait_for_diagnostics(uri) == []


async def test_incremental_edits_after_a_unicode_line_separator(nvim: EditorClient):
    text = PROMPT.replace("You are a careful", "You are a\u2028careful\x0c")
    uri = await open_news(nvim, text)
    version = send_edits(nvim, uri, [(nvim.range_of(uri, "article }}"), "topic }}")])
    nvim.texts[uri] = text.replace("article }}", "topic }}")  # the helper splits lines alike
    diagnostics = await nvim.wait_for_diagnostics(uri, version)
    assert only(diagnostics, "undefined-variable").range == nvim.range_of(uri, "topic")


async def test_open_change_and_save_with_a_slow_debounce(pushed: EditorClient):
    uri = await open_news(pushed)  # the check on open is not debounced: it would time out here
    line = pushed.position_of(uri, "Article:")
    # a burst of changes: only the last version is checked, after the configured debounce
    started = time.monotonic()
    for word in ("{{ a }}", "{{ b }}", "{{ c }}"):
        version = send_edits(pushed, uri, [insert_at(line, word)])
    diagnostics = await pushed.wait_for_diagnostics(uri, version)
    assert time.monotonic() - started >= DEBOUNCE_MS / 1000 - 0.1
    assert [p.version for p in pushed.published[uri]] == [1, version]
    assert sorted(
        d.message.split("'")[1] for d in diagnostics if d.code == "undefined-variable"
    ) == ["a", "b", "c"]
    # saving checks at once, without waiting for the debounce
    version = send_edits(pushed, uri, [(pushed.range_of(uri, "{{ c }}"), "")])
    started = time.monotonic()
    pushed.text_document_did_save(types.DidSaveTextDocumentParams(ident(uri)))
    diagnostics = await pushed.wait_for_diagnostics(uri, version)
    assert time.monotonic() - started < DEBOUNCE_MS / 1000 - 0.3
    assert len([d for d in diagnostics if d.code == "undefined-variable"]) == 2


async def test_examples_file_changes_recheck_the_prompt(vscode: EditorClient):
    text = PROMPT.replace("    sentences?:", "    tone: string, the tone\n    sentences?:")
    text = text.replace("Article: {{ article }}", "Article ({{ tone }}): {{ article }}")
    uri = await open_news(vscode, text)
    examples_uri = uri_of(vscode.path("news.examples.jsonl"))
    lacking = [d for d in vscode.diagnostics[uri] if d.code == "example-missing-variable"]
    assert len(lacking) == 3
    for number, diagnostic in enumerate(lacking):
        assert diagnostic.source == "prompt-lsp"
        (related,) = diagnostic.related_information or []
        assert related.location.uri == examples_uri  # the examples file line
        assert related.location.range.start.line == number
        assert "tone" in related.message

    # the server asked to be told about examples files changing on disk
    async def registered() -> types.Registration:
        while True:
            for registration in vscode.registrations:
                if registration.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES:
                    return registration
            await asyncio.sleep(0.05)

    registration = await asyncio.wait_for(registered(), TIMEOUT)
    watchers = registration.register_options["watchers"]  # type: ignore[index]
    assert any("jsonl" in str(w["globPattern"]) for w in watchers)

    # fixed on disk, reported by the watcher
    fixed = EXAMPLES.replace('"input": {', '"input": {"tone": "dry", ')
    vscode.write("news.examples.jsonl", fixed)
    vscode.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            [types.FileEvent(examples_uri, types.FileChangeType.Changed)]
        )
    )
    diagnostics = await vscode.wait_for_diagnostics(uri)
    assert "example-missing-variable" not in codes(diagnostics)
    assert vscode.published[uri][-1].version == 1

    # edited in the editor and saved: opening it re-reads it too
    broken = fixed.replace('"tone": "dry", ', "", 1) + "{not json\n"
    vscode.write("news.examples.jsonl", broken)
    await vscode.open("news.examples.jsonl", broken, wait=False)
    diagnostics = await vscode.wait_for_diagnostics(uri)
    syntax = only(diagnostics, "examples-syntax")
    assert syntax.related_information[0].location.uri == examples_uri
    assert syntax.related_information[0].location.range.start.line == 3
    assert len([d for d in diagnostics if d.code == "example-missing-variable"]) == 1
    vscode.write("news.examples.jsonl", fixed + "\n")
    vscode.text_document_did_save(types.DidSaveTextDocumentParams(ident(examples_uri)))
    diagnostics = await vscode.wait_for_diagnostics(uri)
    assert not {"examples-syntax", "example-missing-variable"} & set(codes(diagnostics))
    # the examples file itself gets no prompt diagnostics
    assert examples_uri not in vscode.published


# ---------------------------------------------------------------- completion


async def test_completion_of_variables_replaces_the_typed_word(client: EditorClient):
    options = client.server_capabilities.completion_provider
    assert set("{|<[: ") <= set(options.trigger_characters)
    uri = await open_news(client)
    line = client.position_of(uri, "Article:")
    send_edits(client, uri, [insert_at(line, NON_ASCII + "{{ \n")])
    after = client.position_of(uri, NON_ASCII + "{{ ", offset=len(NON_ASCII) + 3)
    result = await complete(client, uri, after, trigger=" ")
    by_label = check_items(result.items, after, "")
    assert {"article", "sentences"} <= set(by_label)
    article = by_label["article"]
    assert article.kind == types.CompletionItemKind.Variable
    assert article.detail == "string"
    assert "the article to summarize" in article.documentation.value
    assert "optional" in by_label["sentences"].detail
    assert "3" in by_label["sentences"].documentation.value  # the default

    # a partly typed name is replaced, columns counted in the client's units
    send_edits(client, uri, [insert_at(after, "art")])
    pos = types.Position(after.line, after.character + 3)
    result = await complete(client, uri, pos)
    by_label = check_items(result.items, pos, "art")
    text = apply_text_edits(client.texts[uri], [by_label["article"].text_edit], client.encoding)
    # nothing closed the expression: the completion closes it
    assert NON_ASCII + "{{ article }}\n" in text


@pytest.mark.parametrize(
    ("line", "cursor_after", "accepted"),
    [
        ("{{ }}", "{{ ", "{{ article }}"),  # `{{ ` then the editor's auto-closed `}}`
        ("{{ art}}", "{{ art", "{{ article }}"),
        ("{{  }}", "{{ ", "{{ article }}"),  # a space before `}}` is kept, not doubled
        ("{{ -}}", "{{ ", "{{ article -}}"),
        ("{{ art | upper }}", "{{ art", "{{ article | upper }}"),  # the expression goes on
        ("{{ art {{ x }}", "{{ art", "{{ article }} {{ x }}"),  # the next `}}` is another's
        ("{{art", "{{art", "{{article"),  # no space after `{{`: the user's spacing is kept
    ],
)
async def test_completion_closes_the_expression_as_the_user_means(
    client: EditorClient, line: str, cursor_after: str, accepted: str
):
    uri = await open_news(client)
    send_edits(client, uri, [insert_at(client.position_of(uri, "Article:"), line + "\n")])
    pos = client.position_of(uri, line, offset=len(cursor_after))
    typed = cursor_after.removeprefix("{{").lstrip()
    by_label = check_items((await complete(client, uri, pos)).items, pos, typed)
    text = apply_text_edits(client.texts[uri], [by_label["article"].text_edit], client.encoding)
    assert accepted + "\nArticle:" in text


async def test_completion_inside_jinja(nvim: EditorClient):
    uri = await open_news(nvim)
    body = (
        "{% for item in article | split %}{{ it }}{% endfor %}\n"
        "{% set tone = 'dry' %}{{ to }} {{ article | up }}\n"
        "{% if article is de %}x{% endif %}\n"
        "{% en %}{%  %}\n"
        "{% if sen %}{% endif %}\n"
    )
    send_edits(nvim, uri, [insert_at(nvim.position_of(uri, "Article:"), body)])

    # names bound by `for` (and `loop`) inside the loop, `set` names after the tag
    pos = nvim.position_of(uri, "{{ it", offset=5)
    labels = check_items((await complete(nvim, uri, pos)).items, pos, "it")
    assert {"item", "loop", "article"} <= set(labels)
    assert (
        labels["item"].detail == "local" and labels["article"].sort_text < labels["item"].sort_text
    )
    pos = nvim.position_of(uri, "{{ to", offset=5)
    labels = check_items((await complete(nvim, uri, pos)).items, pos, "to")
    assert "tone" in labels and "item" not in labels and "loop" not in labels

    # filters after `|`, tests after `is`, tags after `{%`
    pos = nvim.position_of(uri, "| up", offset=4)
    labels = check_items((await complete(nvim, uri, pos, trigger=None)).items, pos, "up")
    assert labels["upper"].kind == types.CompletionItemKind.Function
    assert labels["upper"].detail == "filter" and "uppercase" in labels["upper"].documentation.value
    pos = nvim.position_of(uri, "| up", offset=2)
    labels = check_items((await complete(nvim, uri, pos, trigger=" ")).items, pos, "")
    assert {"upper", "trim", "join"} <= set(labels)
    pos = nvim.position_of(uri, "is de", offset=5)
    labels = check_items((await complete(nvim, uri, pos)).items, pos, "de")
    assert labels["defined"].detail == "test"
    pos = nvim.position_of(uri, "{% en", offset=5)
    labels = check_items((await complete(nvim, uri, pos)).items, pos, "en")
    assert {"endfor", "endif"} <= set(labels)
    assert labels["endfor"].kind == types.CompletionItemKind.Keyword
    pos = nvim.position_of(uri, "{%  %}", offset=3)
    labels = check_items((await complete(nvim, uri, pos, trigger=" ")).items, pos, "")
    assert {"if", "for", "set"} <= set(labels)
    # variables inside `{% %}` too
    pos = nvim.position_of(uri, "{% if sen", offset=9)
    labels = check_items((await complete(nvim, uri, pos)).items, pos, "sen")
    assert labels["sentences"].kind == types.CompletionItemKind.Variable


async def test_completion_of_special_tokens(nvim: EditorClient):
    text = PROMPT.replace(
        "examples: news.examples.jsonl",
        'examples: news.examples.jsonl\ntokens: ["<doc>", "</doc>"]',
    ).replace("Article: {{ article }}", "[INST] <start>{{ article }}\n")
    uri = await open_news(nvim, text)
    end = types.Position(len(text.split("\n")) - 1, 0)

    async def tokens_after(typed: str) -> list[types.CompletionItem]:
        send_edits(nvim, uri, [(types.Range(end, end_of(nvim, uri)), typed)])
        pos = types.Position(end.line, len(typed))
        result = await complete(nvim, uri, pos, trigger=typed[-1])
        check_items(result.items, pos, typed)
        return ordered(result.items)

    items = await tokens_after("<")
    origins = [item.detail for item in items]
    # open `<start>` is closed first, then the model's family, the file's tokens, the seed tokens
    assert items[0].label == "<end>" and origins[0] == "closing token"
    first = {origin: origins.index(origin) for origin in reversed(origins)}
    assert (
        first["closing token"]
        < first["ChatML token"]
        < first["this file's tokens:"]
        < first["seed token"]
    )
    assert {"<doc>", "</doc>", "<|im_start|>", "<start_of_turn>"} <= {i.label for i in items}
    assert all(i.kind == types.CompletionItemKind.Constant for i in items)
    im_start = next(i for i in items if i.label == "<|im_start|>")
    assert "ChatML" in im_start.documentation.value or "message" in im_start.documentation.value

    items = [i for i in await tokens_after("<|") if i.label.startswith("<|")]  # as shown
    assert items[0].detail == "ChatML token"
    assert "<|start_header_id|>" in {i.label for i in items}  # other families come later
    items = await tokens_after("[")
    assert items[0].label == "[/INST]" and items[0].detail == "closing token"
    assert {"[SEP]", "[CLS]"} <= {i.label for i in items}

    # without `model:` the default model's family comes first
    send_edits(nvim, uri, [(nvim.range_of(uri, "model: openai/gpt-4o-mini\n"), "")])
    end = types.Position(end.line - 1, 0)
    items = await tokens_after("<")
    assert items[1].detail == "Gemma token", [(i.label, i.detail) for i in items[:3]]


async def test_completion_of_role_markers(nvim: EditorClient):
    uri = await open_news(nvim, PROMPT + "\n")
    end = end_of(nvim, uri)
    labels = check_items((await complete(nvim, uri, end)).items, end, "")
    assert set(labels) == {"system:", "user:", "assistant:"}
    assert labels["assistant:"].kind == types.CompletionItemKind.Keyword
    send_edits(nvim, uri, [insert_at(end, "as")])
    pos = types.Position(end.line, 2)
    labels = check_items((await complete(nvim, uri, pos)).items, pos, "as")
    assert set(labels) == {"assistant:"}
    # not in the middle of prose
    send_edits(nvim, uri, [insert_at(pos, " we said, ")])
    pos = types.Position(end.line, 12)
    result = await nvim.text_document_completion_async(types.CompletionParams(ident(uri), pos))
    assert result is None or not getattr(result, "items", result)


async def test_completion_of_front_matter(nvim: EditorClient):
    nvim.write("data/more.csv", "article,expected\na,b\n")
    nvim.write("other.yaml", "- input: {article: a}\n")
    nvim.write("notes.txt", "not examples\n")
    text = PROMPT.replace("metrics:\n  - rougeL\n", "metrics:\n  - rougeL\n  - ro\nev\n")
    text = text.replace("model: openai/gpt-4o-mini\n", "model: gpt-4o-m\nconfig:\n  te\n")
    text = text.replace("  default:\n    sentences: 3\n", "  de\n", 1)
    text = text.replace("examples: news.examples.jsonl", "examples: ")
    uri = await open_news(nvim, text)

    # keys by position: top level, config, input, eval
    pos = nvim.position_of(uri, "\nev\n", offset=3)
    labels = check_items((await complete(nvim, uri, pos)).items, pos, "ev")
    assert "eval" in labels and "model" not in labels  # keys already present are not offered
    assert labels["eval"].kind == types.CompletionItemKind.Property
    assert "concurrency" in labels["eval"].documentation.value
    assert labels["eval"].text_edit.new_text == "eval: "
    pos = nvim.position_of(uri, "  te\n", offset=4)
    labels = check_items((await complete(nvim, uri, pos)).items, pos, "te")
    assert {"temperature", "max_tokens"} <= set(labels)
    assert labels["temperature"].detail == "number"
    pos = nvim.position_of(uri, "  de\n", offset=4)
    labels = check_items((await complete(nvim, uri, pos)).items, pos, "de")
    assert "default" in labels and "schema" not in labels  # written already
    # eval's own keys
    send_edits(nvim, uri, [(nvim.range_of(uri, "\nev\n"), "\neval:\n  co\n")])
    pos = nvim.position_of(uri, "  co\n", offset=4)
    labels = check_items((await complete(nvim, uri, pos)).items, pos, "co")
    assert {"concurrency", "cache", "repeat", "timeout"} <= set(labels)

    # model ids: ranked by prefix match, cut short (the list is incomplete)
    pos = nvim.position_of(uri, "model: gpt-4o-m", offset=15)
    result = await complete(nvim, uri, pos)
    assert result.is_incomplete
    items = ordered(result.items)
    check_items(items, pos, "gpt-4o-m")
    assert items[0].label == "gpt-4o-mini"
    assert items[0].detail == "openai" and "128,000" in items[0].documentation.value
    prefixed = [i.label.startswith("gpt-4o-m") for i in items]
    assert prefixed == sorted(prefixed, reverse=True)
    send_edits(nvim, uri, [(nvim.range_of(uri, "gpt-4o-m"), "anthropic/cl")])
    pos = nvim.position_of(uri, "anthropic/cl", offset=12)
    items = ordered((await complete(nvim, uri, pos)).items)
    check_items(items, pos, "anthropic/cl")
    assert items and all(i.label.startswith("anthropic/cl") for i in items[:10])
    send_edits(nvim, uri, [(nvim.range_of(uri, "anthropic/cl"), "")])
    pos = nvim.position_of(uri, "model: ", offset=7)
    result = await complete(nvim, uri, pos, trigger=" ")
    assert len(result.items) >= 50 and ordered(result.items)[0].label == "local/gemma-3-270m"

    # metric names under `metrics:`
    pos = nvim.position_of(uri, "  - ro", offset=6)
    labels = check_items((await complete(nvim, uri, pos)).items, pos, "ro")
    assert {"rouge1", "rouge2", "rougeL", "rougeLsum"} <= set(labels)
    assert "longest common subsequence" in labels["rougeL"].documentation.value

    # examples files next to the prompt
    pos = nvim.position_of(uri, "examples: ", offset=10)
    labels = check_items((await complete(nvim, uri, pos, trigger=" ")).items, pos, "")
    assert {"news.examples.jsonl", "other.yaml", "data/"} <= set(labels)
    assert "notes.txt" not in labels
    assert labels["data/"].kind == types.CompletionItemKind.Folder
    assert labels["other.yaml"].kind == types.CompletionItemKind.File
    send_edits(nvim, uri, [insert_at(pos, "data/")])
    pos = nvim.position_of(uri, "examples: data/", offset=15)
    labels = check_items((await complete(nvim, uri, pos, trigger="/")).items, pos, "data/")
    assert set(labels) == {"data/more.csv"}


# ---------------------------------------------------------------- hover


async def test_hover_on_a_variable_shows_its_declaration_and_values(client: EditorClient):
    uri = await open_news(client)
    await edit(
        client, uri, [insert_at(client.position_of(uri, "Article:"), NON_ASCII + "{{ article }}")]
    )
    needle = NON_ASCII + "{{ article"
    pos = client.position_of(uri, needle, offset=len(needle) - 2)
    found = await hover(client, uri, pos)
    assert found.range == types.Range(
        client.position_of(uri, needle, offset=len(needle) - 7),
        client.position_of(uri, needle, offset=len(needle)),
    )
    text = found.contents.value
    assert "**article**" in text and "`string`" in text
    assert "the article to summarize" in text
    assert "Rain fell on Tuesday." in text and "Markets rose." in text
    assert text.count("Markets rose.") == 1  # distinct values
    text = (await hover(client, uri, client.position_of(uri, "{{ sentences", offset=4))).contents
    assert "`integer`" in text.value and "Default: `3`" in text.value and "`1`" in text.value


async def test_hover_on_tokens_models_metrics_and_keys(nvim: EditorClient):
    text = PROMPT.replace("Article: {{ article }}", "<|im_start|> [INST] <start>{{ article }}<end>")
    text = text.replace("  - rougeL\n", "  - rougeL\n  - {name: rougeLsum, threshold: 0.2}\n")
    text = text.replace(
        "model: openai/gpt-4o-mini\n", "model: openai/gpt-4o-mini\nconfig:\n  temperature: 0\n"
    )
    uri = await open_news(nvim, text)

    async def hover_text(needle: str, offset: int = 1) -> str:
        return (await hover(nvim, uri, nvim.position_of(uri, needle, offset=offset))).contents.value

    chatml = await hover(nvim, uri, nvim.position_of(uri, "<|im_start|>", offset=3))
    assert chatml.range == nvim.range_of(uri, "<|im_start|>")
    assert "ChatML" in chatml.contents.value and "starts a message" in chatml.contents.value
    assert "Llama 2 / Mistral" in await hover_text("[INST]")
    assert "Seed token" in await hover_text("<start>")

    model = await hover_text("openai/gpt-4o-mini", 3)
    assert "openai" in model and "128,000" in model
    assert "$0.15" in model and "$0.60" in model and "per 1M input / output tokens" in model
    assert "longest common subsequence" in await hover_text("rougeL\n", 2)
    rouge_lsum = await hover_text("rougeLsum", 7)  # not mistaken for rougeL
    assert "**rougeLsum**" in rouge_lsum and "**rougeL**" not in rouge_lsum
    temperature = await hover_text("temperature")
    assert "**temperature** (number)" in temperature and "Sampling temperature" in temperature
    examples = await hover_text("examples:")
    assert "**examples**" in examples and "jsonl" in examples.lower()
    assert "system message" in await hover_text("system:")


# ---------------------------------------------------------------- quick fixes


async def test_quick_fix_declares_an_undefined_variable(client: EditorClient):
    uri = await open_news(client)
    diagnostics = await edit(
        client, uri, [insert_at(client.position_of(uri, "Article:"), NON_ASCII + "{{ topic }}\n")]
    )
    undefined = only(diagnostics, "undefined-variable")
    (action,) = [a for a in await actions_for(client, uri, undefined) if "Declare" in a.title]
    # no example gives `topic`: declared required, it would be an error on every example
    assert action.title == "Declare 'topic' in input.schema (optional)" and action.is_preferred
    text = edited_text(client, uri, action)
    assert "    sentences?: integer, how many sentences\n    topic?: string\n" in text
    after = await replace_text(client, uri, text)
    assert "undefined-variable" not in codes(after)
    errors = [d for d in after if d.severity == types.DiagnosticSeverity.Error]
    assert len(after) < len(diagnostics) and not errors, after


async def test_quick_fixes_apply_did_you_mean(nvim: EditorClient):
    text = (
        PROMPT.replace("model: openai/gpt-4o-mini", "model: gpt-4o-mni")
        .replace("examples:", "exampels:")
        .replace("  - rougeL", "  - rougel")
        .replace("{{ article }}", "{{ article | uper }}")
    )
    uri = await open_news(nvim, text)
    diagnostics = nvim.diagnostics[uri]
    wanted = {
        "unknown-key": ("Change key to 'examples'", "examples: news.examples.jsonl"),
        "unknown-model": ("Change model to 'gpt-4o-mini'", "model: gpt-4o-mini\n"),
        "unknown-metric": ("Change metric to 'rougeL'", "  - rougeL\n"),
        "unknown-filter": ("Change filter to 'upper'", "{{ article | upper }}"),
    }
    edits: list[types.TextEdit] = []
    for code, (title, result) in wanted.items():
        diagnostic = only(diagnostics, code)
        assert "Did you mean" in diagnostic.message
        actions = {a.title: a for a in await actions_for(nvim, uri, diagnostic)}
        assert title in actions, (code, list(actions))
        assert result in edited_text(nvim, uri, actions[title])
        edits += actions[title].edit.changes[uri]
    fixed = apply_text_edits(text, edits, nvim.encoding)
    diagnostics = await replace_text(nvim, uri, fixed)
    assert not set(wanted) & set(codes(diagnostics)), diagnostics


async def test_quick_fix_adds_a_missing_closing_token(nvim: EditorClient):
    text = PROMPT.replace("Article: {{ article }}", "Article: <start>{{ article }}\n[INST] Go.")
    uri = await open_news(nvim, text)
    unbalanced = [d for d in nvim.diagnostics[uri] if d.code == "unbalanced-token"]
    assert [d.range for d in unbalanced] == [
        nvim.range_of(uri, "<start>"),
        nvim.range_of(uri, "[INST]"),
    ]
    fixed = text
    for diagnostic in unbalanced:
        (action,) = await actions_for(nvim, uri, diagnostic)
        assert action.title.startswith("Add '") and action.is_preferred
        fixed = apply_text_edits(fixed, action.edit.changes[uri], nvim.encoding)
    assert "<start>{{ article }}<end>\n[INST] Go.[/INST]" in fixed
    assert "unbalanced-token" not in codes(await replace_text(nvim, uri, fixed))


async def test_quick_fix_creates_a_missing_examples_file(client: EditorClient):
    text = PROMPT.replace("news.examples.jsonl", "cases/new.jsonl")
    uri = await client.open("news.prompt", text)
    missing = only(client.diagnostics[uri], "examples-not-found")
    assert missing.range == client.range_of(uri, "cases/new.jsonl")
    (action,) = await actions_for(client, uri, missing)
    assert action.title == "Create new.jsonl with a skeleton example"
    assert action.edit is None and action.command is not None
    assert action.command.command == "prompt-lsp.createExamplesFile"
    assert action.command.command in client.server_capabilities.execute_command_provider.commands
    path = client.path("cases/new.jsonl")
    assert not path.exists()
    client.workspace_execute_command(
        types.ExecuteCommandParams(action.command.command, action.command.arguments)
    )
    diagnostics = await client.wait_for_diagnostics(uri)
    assert "examples-not-found" not in codes(diagnostics)
    skeleton = json.loads(path.read_text(encoding="utf-8"))
    assert skeleton == {"input": {"article": "", "sentences": ""}, "expected": ""}
    assert [d.uri for d in client.shown_documents] == [uri_of(path)]
    # run again (a stale action): the file is not overwritten, the user is told
    path.write_text('{"input": {"article": "kept"}}\n', encoding="utf-8")
    await asyncio.wait_for(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(action.command.command, action.command.arguments)
        ),
        TIMEOUT,
    )
    assert "kept" in path.read_text(encoding="utf-8")
    assert any("already exists" in m.message for m in client.messages)


# ---------------------------------------------------------------- settings


def foreign(diagnostics: Sequence[types.Diagnostic]) -> list[types.Diagnostic]:
    return [d for d in diagnostics if d.code == "foreign-token"]


CHATML = PROMPT.replace("model: openai/gpt-4o-mini\n", "").replace(
    "Article: {{ article }}", "<|im_start|>user\n{{ article }}<|im_end|>"
)


async def test_settings_are_pulled_and_changes_applied(pulled: EditorClient):
    uri = await open_news(pulled, CHATML)
    # ChatML is native to the configured default model (pulled after initialize)
    await settle(pulled, uri, lambda d: not foreign(d))

    # the client says the settings changed without sending them: the server pulls them
    pulled.set_configuration({"defaultModel": "local/gemma-3-270m"}, section="promptLsp")
    pulled.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    diagnostics = await settle(pulled, uri, lambda d: len(foreign(d)) == 2)
    warning = foreign(diagnostics)[0]
    assert warning.range == pulled.range_of(uri, "<|im_start|>")
    assert "gemma" in warning.message.lower()
    assert pulled.published[uri][-1].version == pulled.versions[uri]

    # settings sent with the notification are used as they are
    pulled.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"promptLsp": {"defaultModel": "openai/gpt-4o-mini"}}
        )
    )
    await settle(pulled, uri, lambda d: not foreign(d))


async def test_settings_from_initialization_options(pushed: EditorClient):
    uri = await open_news(pushed, CHATML)
    assert not foreign(pushed.diagnostics[uri])  # applied before the first check
    # special tokens of the configured default model come first
    end = pushed.position_of(uri, "<|im_end|>", offset=len("<|im_end|>"))
    send_edits(pushed, uri, [insert_at(end, "\n<")])
    pos = types.Position(end.line + 1, 1)
    items = ordered((await complete(pushed, uri, pos, trigger="<")).items)
    assert [i.detail for i in items if i.detail != "closing token"][0] == "ChatML token"

    pushed.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"promptLsp": {"defaultModel": "local/gemma-3-270m", "debounce": 0}}
        )
    )
    diagnostics = await settle(pushed, uri, lambda d: len(foreign(d)) == 2)
    assert all("gemma" in d.message.lower() for d in foreign(diagnostics))
    items = ordered((await complete(pushed, uri, pos, trigger="<")).items)
    assert [i.detail for i in items if i.detail != "closing token"][0] == "Gemma token"
    # the new debounce applies too
    started = time.monotonic()
    await edit(pushed, uri, [insert_at(pos, "x")])
    assert time.monotonic() - started < DEBOUNCE_MS / 1000


SMALL_CONTEXT = """\
---
model: anyscale/meta-llama/Llama-2-7b-chat-hf
input:
  schema:
    text: string, a long text
examples: long.examples.jsonl
---
[INST] Summarize: {{ text }} [/INST]
"""


async def test_context_overflow_survives_typing(nvim: EditorClient) -> None:
    """The context check renders the template, so while typing it runs once typing pauses; its
    finding stays shown in between instead of flickering."""
    nvim.write("long.examples.jsonl", json.dumps({"input": {"text": "word " * 6000}}) + "\n")
    uri = await nvim.open("long.prompt", SMALL_CONTEXT)
    overflow = [d for d in nvim.diagnostics[uri] if d.code == "context-overflow"]
    assert len(overflow) == 1 and "4,096-token context window" in overflow[0].message
    version = await nvim.change(uri, SMALL_CONTEXT.replace("Summarize", "Summarise"))
    first = await nvim.wait_for_diagnostics(uri, version)
    assert [d.code for d in first].count("context-overflow") == 1
    # shortening the input removes it once the slow check has run again
    nvim.write("long.examples.jsonl", json.dumps({"input": {"text": "short"}}) + "\n")
    version = await nvim.change(uri, SMALL_CONTEXT)

    async def cleared() -> bool:
        latest = nvim.published[uri][-1]
        return latest.version == version and all(
            d.code != "context-overflow" for d in latest.diagnostics
        )

    deadline = asyncio.get_running_loop().time() + 10
    while not await cleared():
        assert asyncio.get_running_loop().time() < deadline, nvim.published[uri][-1]
        await asyncio.sleep(0.05)
