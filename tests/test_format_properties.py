"""No template text in any of the three languages (Jinja2, Handlebars, Mustache) crashes the
parser, a check, or rendering: parse keeps every range inside the text, checks run, and a render
either gives messages or a RenderError."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_properties import _check_range, _model_ranges

from prompt_lsp.checks import check_document
from prompt_lsp.format import parse
from prompt_lsp.format.language import TemplateLanguage
from prompt_lsp.format.render import RenderError, render_messages

HANDLEBARS = [
    "{{",
    "}}",
    "{{{",
    "}}}",
    "{{~",
    "~}}",
    "{{name}}",
    "{{a.b}}",
    "{{../up}}",
    "{{@root.x}}",
    "{{@index}}",
    "{{this}}",
    "{{#if x}}",
    "{{else}}",
    "{{else if y}}",
    "{{/if}}",
    "{{#each items as |it i|}}",
    "{{/each}}",
    "{{#with w}}",
    "{{/with}}",
    "{{#unless u}}",
    "{{/unless}}",
    '{{role "system"}}',
    '{{role "model"}}',
    "{{history}}",
    "{{media url=u}}",
    '{{section "s"}}',
    "{{json x indent=2}}",
    '{{#ifEquals a "b"}}',
    "{{/ifEquals}}",
    "{{> part}}",
    "{{> ../etc}}",
    "{{#> block}}",
    "{{/block}}",
    "{{! c }}",
    "{{!-- c --}}",
    "{{{{raw}}}}",
    "{{{{/raw}}}}",
    "{{helper (sub a) k=v}}",
    "{{*decorator}}",
    "\\{{",
    '"',
    "'",
    "(",
    ")",
    "[",
    "]",
    "|",
]
MUSTACHE = [
    "{{",
    "}}",
    "{{{",
    "}}}",
    "{{x}}",
    "{{a.b}}",
    "{{.}}",
    "{{&raw}}",
    "{{#s}}",
    "{{/s}}",
    "{{^s}}",
    "{{! c }}",
    "{{> p}}",
    "{{=<% %>=}}",
    "<%x%>",
    "<%={{ }}=%>",
]
COMMON = ["\n", "\r\n", " ", "text", "system:\n", 'user[name="A"]:\n', "developer:\n", "é", "\x00"]
FRONT = [
    "",
    "---\n---\n",
    "---\ninput:\n  schema:\n    name: string\n    x(array): string\n    (*): any\n---\n",
    "---\noutput:\n  schema:\n    a: strin\n---\n",
    "---\ninputs:\n  - name: x\n    kind: image\n---\n",
]


def _bodies(pieces: list[str]) -> st.SearchStrategy[str]:
    return st.lists(
        st.one_of(st.sampled_from(pieces + COMMON), st.text(max_size=4)), max_size=30
    ).map("".join)


FOLDER = Path(tempfile.mkdtemp(prefix="prompt-lsp-formats-"))
(FOLDER / "_part.prompt").write_text("partial {{> part}}")  # includes itself: a cycle


def _exercise(text: str, language: str, name: str) -> None:
    path = FOLDER / name
    doc = parse(text, path=str(path), language_setting=language)
    assert doc.text == text
    assert not [p for p in doc.problems if p.code == "parse-error"], doc.problems
    for rng, what in _model_ranges(doc):
        _check_range(doc, rng, what)
    for finding in check_document(doc, None, path):
        _check_range(doc, finding.range, finding)
    try:
        messages = render_messages(
            doc, {"name": "<n>", "x": [1, 2], "items": ["a"], "u": "", "w": {}}
        )
    except RenderError:
        return
    assert messages and all(isinstance(m.content, str) for m in messages)


_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_SETTINGS
@given(st.sampled_from(FRONT), _bodies(HANDLEBARS))
def test_handlebars_text_never_crashes(front: str, body: str) -> None:
    _exercise(front + body, TemplateLanguage.HANDLEBARS.value, "p.prompt")


@_SETTINGS
@given(st.sampled_from(FRONT), _bodies(MUSTACHE))
def test_mustache_text_never_crashes(front: str, body: str) -> None:
    _exercise(front + body, TemplateLanguage.MUSTACHE.value, "p.prompty")


@_SETTINGS
@given(
    st.sampled_from(FRONT),
    _bodies(HANDLEBARS + MUSTACHE + ["{% if a %}", "{% endif %}", "{{ a | upper }}"]),
)
def test_any_text_in_an_undecided_file_never_crashes(front: str, body: str) -> None:
    """No setting: the file's own content decides, for a `.prompt` and a `.prompty` file."""
    _exercise(front + body, "", "p.prompt")
    _exercise(front + body, "", "p.prompty")
