"""End to end over stdio: definition, references, highlights and rename of input variables."""

from __future__ import annotations

import asyncio

import pytest
from lsp_helpers import (
    SAMPLE_EXAMPLES,
    SAMPLE_PROMPT,
    TIMEOUT,
    EditorClient,
    editor_client,
    uri_of,
    workspace_edit_files,
)
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

client = editor_client()


def ident(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri)


def targets(result) -> list[tuple[str, types.Range]]:
    """(uri, range of the name) per Location or LocationLink."""
    found = []
    for item in result or []:
        if isinstance(item, types.LocationLink):
            assert item.target_range.start.line <= item.target_selection_range.start.line
            found.append((item.target_uri, item.target_selection_range))
        else:
            found.append((item.uri, item.range))
    return found


def declared_at(client: EditorClient, uri: str, line_start: str, name: str) -> types.Range:
    """The range of `name` at the start of the line that begins with `line_start`."""
    start = client.position_of(uri, line_start, offset=line_start.index(name))
    end = client.position_of(uri, line_start, offset=line_start.index(name) + len(name))
    return types.Range(start, end)


async def definition(client: EditorClient, uri: str, pos: types.Position):
    return await asyncio.wait_for(
        client.text_document_definition_async(types.DefinitionParams(ident(uri), pos)), TIMEOUT
    )


async def open_sample(client: EditorClient) -> str:
    client.write("news.examples.jsonl", SAMPLE_EXAMPLES)
    return await client.open("news.prompt", SAMPLE_PROMPT)


async def rename(client: EditorClient, uri: str, pos: types.Position, new_name: str):
    return await asyncio.wait_for(
        client.text_document_rename_async(types.RenameParams(ident(uri), pos, new_name)), TIMEOUT
    )


# ---------------------------------------------------------------- definition


async def test_definition_of_a_variable_lands_on_its_schema_line(client: EditorClient):
    uri = await open_sample(client)
    schema = declared_at(client, uri, "    article: string", "article")
    for needle in ("article |", "article }}"):  # in the for tag, then in `{{ article }}`
        result = await definition(client, uri, client.position_of(uri, needle, offset=3))
        assert targets(result) == [(uri, schema)]
    # `sentences` is declared in the schema (with `?`) and has a default: the schema wins
    result = await definition(client, uri, client.position_of(uri, "{{ sentences", offset=3))
    assert targets(result) == [(uri, declared_at(client, uri, "    sentences?:", "sentences"))]


async def test_definition_of_a_variable_declared_only_by_its_default(client: EditorClient):
    text = "---\ninput:\n  default:\n    tone: dry\n---\nBe {{ tone }}.\n"
    uri = await client.open("tone.prompt", text)
    result = await definition(client, uri, client.position_of(uri, "tone }}"))
    assert targets(result) == [(uri, declared_at(client, uri, "    tone: dry", "tone"))]


async def test_definition_of_examples_opens_the_examples_file(client: EditorClient):
    uri = await open_sample(client)
    pos = client.position_of(uri, "news.examples.jsonl", offset=5)
    result = await definition(client, uri, pos)
    examples = uri_of(client.root / "news.examples.jsonl")
    start = types.Range(types.Position(0, 0), types.Position(0, 0))
    assert targets(result) == [(examples, start)]


async def test_no_definition_for_locals_filters_and_text(client: EditorClient):
    uri = await open_sample(client)
    for needle in ("paragraph | trim", "trim", "careful", "{% for"):
        assert await definition(client, uri, client.position_of(uri, needle, offset=1)) is None


# ---------------------------------------------------------------- references and highlights


async def test_references_of_a_variable(client: EditorClient):
    uri = await open_sample(client)
    pos = client.position_of(uri, "article }}")

    async def references(include: bool) -> list[types.Location]:
        params = types.ReferenceParams(
            context=types.ReferenceContext(include), text_document=ident(uri), position=pos
        )
        return await asyncio.wait_for(client.text_document_references_async(params), TIMEOUT)

    uses = [client.range_of(uri, "article |"), client.range_of(uri, "article }}")]
    uses = [types.Range(r.start, types.Position(r.start.line, r.start.character + 7)) for r in uses]
    everywhere = await references(False)
    without = [loc for loc in everywhere if loc.uri == uri]
    assert sorted((loc.range.start.line, loc.range.start.character) for loc in without) == [
        (r.start.line, r.start.character) for r in uses
    ]
    assert [loc.range for loc in without] == uses
    # the examples file gives `article` on each of its lines: those keys are references too
    # (the places a rename changes there)
    examples_uri = uri_of(client.root / "news.examples.jsonl")
    in_examples = [loc for loc in everywhere if loc.uri == examples_uri]
    example_lines = SAMPLE_EXAMPLES.splitlines()
    assert [loc.range.start.line for loc in in_examples] == list(range(len(example_lines)))
    for loc in in_examples:
        line = example_lines[loc.range.start.line]
        assert line[loc.range.start.character : loc.range.end.character] == "article"
    assert len(everywhere) == len(without) + len(in_examples)
    with_declaration = [loc for loc in await references(True) if loc.uri == uri]
    assert len(with_declaration) == 3
    assert with_declaration[0].range == declared_at(client, uri, "    article: string", "article")

    # from the declaration, the schema and default keys of `sentences` count as declarations
    pos = client.position_of(uri, "sentences?", offset=2)
    params = types.ReferenceParams(
        context=types.ReferenceContext(True), text_document=ident(uri), position=pos
    )
    found = await asyncio.wait_for(client.text_document_references_async(params), TIMEOUT)
    # schema, default, `{{ sentences }}`, and the one example that gives it
    assert len([loc for loc in found if loc.uri == uri]) == 3
    assert [loc.range.start.line for loc in found if loc.uri != uri] == [0]


async def test_document_highlight_marks_declaration_and_uses(client: EditorClient):
    uri = await open_sample(client)
    params = types.DocumentHighlightParams(
        ident(uri), client.position_of(uri, "{{ sentences", offset=4)
    )
    result = await asyncio.wait_for(client.text_document_document_highlight_async(params), TIMEOUT)
    kinds = sorted((h.range.start.line, h.kind) for h in result)
    assert [k for _, k in kinds] == [
        types.DocumentHighlightKind.Write,  # schema
        types.DocumentHighlightKind.Write,  # default
        types.DocumentHighlightKind.Read,
    ]


# ---------------------------------------------------------------- rename


async def test_prepare_rename_only_on_variables(client: EditorClient):
    uri = await open_sample(client)

    async def prepare(pos: types.Position):
        params = types.PrepareRenameParams(ident(uri), pos)
        return await asyncio.wait_for(client.text_document_prepare_rename_async(params), TIMEOUT)

    for needle in ("paragraph in", "trim", "{% for", "careful", "summarize-news", "temperature"):
        assert await prepare(client.position_of(uri, needle, offset=1)) is None, needle
    result = await prepare(client.position_of(uri, "article }}", offset=2))
    assert isinstance(result, types.PrepareRenamePlaceholder)
    assert result.placeholder == "article"
    assert result.range == declared_at(client, uri, "Article: {{ article }}", "article")
    result = await prepare(client.position_of(uri, "    sentences?", offset=5))  # the declaration
    assert result.placeholder == "sentences"
    assert result.range == declared_at(client, uri, "    sentences?", "sentences")


async def test_rename_edits_template_schema_default_and_examples_file(client: EditorClient):
    uri = await open_sample(client)
    examples = uri_of(client.root / "news.examples.jsonl")

    edit = await rename(client, uri, client.position_of(uri, "{{ sentences", offset=3), "count")
    files = workspace_edit_files(edit)
    assert {f[0] for f in files} == {uri, examples}
    if client.spec.startswith("visual_studio_code"):  # takes documentChanges
        assert edit.document_changes is not None and edit.changes is None
        assert dict((f[0], f[1]) for f in files) == {uri: 1, examples: None}
    else:
        assert edit.changes is not None and edit.document_changes is None
    texts = client.apply(edit)
    expected = (
        SAMPLE_PROMPT.replace("    sentences?:", "    count?:")
        .replace("    sentences: 3", "    count: 3")
        .replace("{{ sentences }}", "{{ count }}")
    )
    assert texts[uri] == expected
    assert texts[examples] == SAMPLE_EXAMPLES.replace('"sentences": 1', '"count": 1')

    edit = await rename(client, uri, client.position_of(uri, "article:", offset=1), "story")
    texts = client.apply(edit)
    assert texts[uri] == SAMPLE_PROMPT.replace("article: string", "story: string").replace(
        "{% for paragraph in article |", "{% for paragraph in story |"
    ).replace("{{ article }}", "{{ story }}")
    # only the input keys change: not the values, not other keys
    assert texts[examples] == SAMPLE_EXAMPLES.replace('{"article":', '{"story":')


async def test_rename_prefers_the_open_examples_text(client: EditorClient):
    uri = await open_sample(client)
    unsaved = SAMPLE_EXAMPLES + '{"input": {"article": "Édition spéciale 🗞️", "sentences": 2}}\n'
    examples = await client.open("news.examples.jsonl", unsaved)
    client.write("news.examples.jsonl", SAMPLE_EXAMPLES)  # the disk is older than the editor
    edit = await rename(client, uri, client.position_of(uri, "{{ sentences", offset=3), "n")
    if client.spec.startswith("visual_studio_code"):
        assert {f[0]: f[1] for f in workspace_edit_files(edit)}[examples] == 1
    texts = client.apply(edit)
    assert texts[examples] == unsaved.replace('"sentences":', '"n":')


OTHER_FORMATS = [
    (
        "cases.csv",
        'id,"topic",expected\n1,rain,"a ""wet"" day"\n',
        'id,subject,expected\n1,rain,"a ""wet"" day"\n',
    ),
    (
        "cases.yaml",
        "- input:\n    topic: rain\n  expected: {topic: no}\n- {'topic': snow, id: x}\n",
        "- input:\n    subject: rain\n  expected: {topic: no}\n- {'subject': snow, id: x}\n",
    ),
    (
        "cases.json",
        '[\n  {"input": {"topic": "rain"}, "expected": {"topic": 1}},\n  {"topic": "snow"}\n]\n',
        '[\n  {"input": {"subject": "rain"}, "expected": {"topic": 1}},\n  {"subject": "snow"}\n]\n',
    ),
]


async def test_rename_in_csv_yaml_and_json_examples(client: EditorClient):
    for examples_name, examples, expected in OTHER_FORMATS:
        client.write(examples_name, examples)
        text = (
            "---\ninput:\n  schema:\n    topic: string\n"
            f"examples: {examples_name}\n---\nuser:\n"
            "A haiku on {{ topic }} — ✍️ {{ topic|upper }}\n"
        )
        uri = await client.open(examples_name + ".prompt", text)
        edit = await rename(client, uri, client.position_of(uri, "topic|", offset=1), "subject")
        texts = client.apply(edit)
        assert texts[uri] == text.replace("topic", "subject")
        assert texts[uri_of(client.root / examples_name)] == expected, examples_name


async def test_rename_inline_examples(client: EditorClient):
    text = (
        "---\ninput:\n  schema:\n    topic: string\nexamples:\n"
        "  - {input: {topic: rain}, expected: wet}\n  - topic: snow\n    expected: cold\n"
        "---\nA haiku on {{ topic }}\n"
    )
    uri = await client.open("inline.prompt", text)
    edit = await rename(client, uri, client.position_of(uri, "topic }}"), "theme")
    assert client.apply(edit) == {uri: text.replace("topic", "theme")}


async def test_rename_to_an_invalid_name_is_an_error(client: EditorClient):
    uri = await open_sample(client)
    pos = client.position_of(uri, "article }}")
    for new_name in ("2fast", "has space", "a-b", "", "for", "loop", "sentences"):
        with pytest.raises(JsonRpcInvalidParams) as raised:
            await rename(client, uri, pos, new_name)
        assert f"`{new_name}`" in raised.value.message
    # a rename away from anything but a variable is refused too
    with pytest.raises(JsonRpcInvalidParams):
        await rename(client, uri, client.position_of(uri, "careful"), "fine")
    # and the server is still fine
    result = await definition(client, uri, pos)
    assert len(targets(result)) == 1
