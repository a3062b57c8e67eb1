"""Prompty files read as Prompty reads them: its conformance vectors for parsing and rendering,
roles and whitespace, Mustache through chevron, v1 and v2 keys, and microsoft/prompty's files."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_suites import DATA, prompty_vectors, run_prompty_vector

from prompt_lsp.checks import check_document
from prompt_lsp.checks.findings import Severity
from prompt_lsp.format import parse
from prompt_lsp.format.language import Dialect, TemplateLanguage
from prompt_lsp.format.render import render_messages

VECTORS = prompty_vectors()


def test_the_vectors_are_all_there() -> None:
    # 19 parse + 23 render vectors in microsoft/prompty, less the thread/nonce ones
    assert len(VECTORS) == 40


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_prompty_conformance_vector(vector: dict) -> None:
    outcome = run_prompty_vector(vector)
    assert outcome.passed, outcome.detail


def _messages(text: str, values: dict, name: str = "chat.prompty") -> list[tuple[str, str]]:
    doc = parse(text, path=name)
    return [(m.role, m.content) for m in render_messages(doc, values)]


def test_text_before_any_marker_is_a_system_message_and_developer_is_a_role() -> None:
    text = "---\nname: t\n---\nYou help.\n\ndeveloper:\nBe terse.\nuser:\n{{ q }}\n"
    assert _messages(text, {"q": "Hi"}) == [
        ("system", "You help."),
        ("developer", "Be terse."),
        ("user", "Hi"),
    ]


def test_a_missing_variable_renders_empty_and_whitespace_is_kept() -> None:
    text = "---\nname: t\n---\nuser:\n  Dear {{ name }},\n\n    indented\n\nassistant:\n\nuser:\nok"
    assert _messages(text, {}) == [
        ("user", "  Dear ,\n\n    indented"),
        ("assistant", ""),  # an empty message is kept, as Prompty keeps it
        ("user", "ok"),
    ]


def test_for_loop_whitespace_is_jinjas_own() -> None:
    text = "---\nname: t\n---\nuser:\n{% for x in xs %}\n- {{ x }}\n{% endfor %}\ndone"
    assert _messages(text, {"xs": ["a", "b"]}) == [("user", "- a\n\n- b\n\ndone")]


def test_role_attributes_become_the_message_name() -> None:
    doc = parse('---\nname: t\n---\nuser[name="Alice"]:\nHello', path="a.prompty")
    [message] = render_messages(doc, {})
    assert (message.role, message.name, message.content) == ("user", "Alice", "Hello")
    assert message.as_dict() == {"role": "user", "content": "Hello", "name": "Alice"}
    assert [m.marker_range is not None for m in doc.messages] == [True]


def test_mustache_prompty_renders_with_chevron() -> None:
    text = (
        "---\nname: m\ntemplate:\n  format:\n    kind: mustache\ninputs:\n"
        "  - name: items\n    kind: array\n  - name: who\n    kind: string\n---\n"
        "system:\nHi {{who}}!\nuser:\n{{#items}}[{{.}}]{{/items}}{{^items}}none{{/items}}"
    )
    doc = parse(text, path="m.prompty")
    assert doc.template_format.language is TemplateLanguage.MUSTACHE
    assert _messages(text, {"who": "Ada & Bob", "items": ["a", "b"]}, "m.prompty") == [
        ("system", "Hi Ada &amp; Bob!"),  # chevron escapes HTML, as in Prompty
        ("user", "[a][b]"),
    ]
    assert [f for f in check_document(doc, None) if f.severity is Severity.ERROR] == []


def test_mustache_syntax_errors_are_reported_at_the_section() -> None:
    text = "---\ntemplate: mustache\ninputs:\n  x:\n    type: string\n---\nuser:\n{{#x}}open"
    doc = parse(text, path="m.prompty")
    [syntax] = [f for f in check_document(doc, None) if f.code == "template-syntax"]
    assert (syntax.range.start.line, syntax.range.start.character) == (7, 0)
    assert "never closed" in syntax.message


def test_shorthand_template_key_and_the_default() -> None:
    assert parse("user:\nhi", path="a.prompty").template_format.language is TemplateLanguage.JINJA
    doc = parse("---\ntemplate: mustache\n---\nuser:\nhi", path="a.prompty")
    assert (doc.template_format.dialect, doc.template_format.language) == (
        Dialect.PROMPTY,
        TemplateLanguage.MUSTACHE,
    )


def test_multimodal_and_thread_input_kinds_are_valid() -> None:
    text = (
        "---\nname: t\ninputs:\n  - name: photo\n    kind: image\n  - name: clip\n    kind: audio\n"
        "  - name: doc\n    kind: file\n  - name: chat\n    kind: thread\n---\n"
        "user:\n{{ photo }} {{ clip }} {{ doc }} {{ chat }}"
    )
    doc = parse(text, path="t.prompty")
    assert [f for f in check_document(doc, None) if f.severity is Severity.ERROR] == []


def test_v2_keys_and_references_are_known_and_an_undeclared_input_is_still_found() -> None:
    text = (
        "---\nname: t\nkind: prompt\nmodel:\n  id: gpt-4o-mini\n  connection:\n"
        "    kind: key\n    endpoint: ${env:AZURE_ENDPOINT}\ninputSchema:\n  properties:\n"
        "    - name: q\n      kind: string\ninputs:\n  - name: q\n    kind: string\n"
        "template:\n  format:\n    kind: jinja2\n  parser:\n    kind: prompty\n"
        "sample: ${file:sample.json}\nsomethingNew: 1\n---\nuser:\n{{ q }} {{ extra }}"
    )
    findings = check_document(parse(text, path="t.prompty"), None)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    assert [(f.code, f.message) for f in errors] == [
        ("undefined-variable", "'extra' is used but not declared in inputs.")
    ]


PROMPTY_FILES = sorted((DATA / "prompty" / "prompts").glob("*.prompty"))


@pytest.mark.parametrize("path", PROMPTY_FILES, ids=lambda p: p.name)
def test_microsoft_prompty_files_have_no_false_errors(path: Path) -> None:
    doc = parse(path.read_text(encoding="utf-8"), path=str(path), bounded=False)
    assert doc.template_format.dialect is Dialect.PROMPTY
    errors = [f for f in check_document(doc, None, path) if f.severity is Severity.ERROR]
    assert errors == []
    values = {f.name: "x" for f in doc.schema}
    assert render_messages(doc, values)  # renders by Prompty's rules
