"""Properties that hold for any text: parsing and checking never raise, and every range they
report lies inside the document. Plus: the trimmed free-name tracker agrees with Jinja's own.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import meta, nodes

from prompt_lsp.checks import check_document
from prompt_lsp.evaluation.examples import load_examples
from prompt_lsp.format import parse
from prompt_lsp.format.model import Position, PromptDocument, Range
from prompt_lsp.format.template import _free_names, _lex, _parse_tokens

FRAGMENTS = [
    "---",
    "---\n",
    "\n",
    "\r\n",
    "\r",
    " ",
    "\t",
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "{{-",
    "-%}",
    "{{ a }}",
    "{{ b.c | upper }}",
    "{{ d[0] | nosuch }}",
    "{% for x in xs %}",
    "{% endfor %}",
    "{% if a is odd %}",
    "{% else %}",
    "{% endif %}",
    "{% set s = 1 %}",
    "{% raw %}",
    "{% endraw %}",
    "{% macro m(p, q=r) %}",
    "{% endmacro %}",
    "system:\n",
    "user:\n",
    "assistant:\n",
    "SYSTEM :\n",
    "name: x\n",
    "model: gpt-4o-mini\n",
    "model: gpt-4o-mnii\n",
    "model: {id: gpt-4o}\n",
    "config:\n  temperature: hot\n",
    "config: {maxOutputTokens: -1}\n",
    "input:\n  schema:\n    a: string\n    b?: integr\n",
    "input:\n  default:\n    a: 1\n",
    "inputs:\n  - name: a\n    kind: string\n",
    "inputs:\n  a:\n    type: string\n",
    "sample: {a: 1}\n",
    "examples: [{input: {a: 1}}, 3]\n",
    "examples: missing.jsonl\n",
    "examples: cases.jsonl\n",
    "metrics: [rougeL, {name: rouge_1, threshold: 2}]\n",
    "tokens: ['<x>', 3]\n",
    "&a ",
    "*a",
    "[",
    "]",
    ": ",
    "- ",
    "'",
    '"',
    "<start>",
    "<end>",
    "<article>",
    "</article>",
    "[INST]",
    "[/INST]",
    "<|im_start|>",
    "<|im_end|>",
    "<start_of_turn>",
    "<<SYS>>",
    "\x00",
    "\x0b",
    "\ufeff",
    "\u2028",
    "\udc80",
    "é",
    "😀",
]

documents = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=40).map(
    "".join
)

_EXAMPLES_DIR = Path(tempfile.mkdtemp(prefix="prompt-lsp-properties-"))
(_EXAMPLES_DIR / "cases.jsonl").write_text('{"input": {"a": 1}}\n{bad\n{"a": "x"}\n')
PROMPT_PATH = _EXAMPLES_DIR / "generated.prompt"


def _inside(doc: PromptDocument, pos: Position, what: object) -> None:
    assert 0 <= pos.line < len(doc.lines), (what, pos, len(doc.lines))
    assert 0 <= pos.character <= len(doc.lines[pos.line]), (what, pos, doc.lines[pos.line])


def _check_range(doc: PromptDocument, rng: Range | None, what: object) -> None:
    if rng is None:
        return
    _inside(doc, rng.start, what)
    _inside(doc, rng.end, what)
    assert rng.start <= rng.end, (what, rng)


def _model_ranges(doc: PromptDocument):
    yield doc.front_matter_range, "front matter"
    for entry in doc.entries:
        yield entry.key_range, entry
        yield entry.value_range, entry
    for field in doc.schema:
        yield field.range, field
        yield field.type_range, field
    for message in doc.messages:
        yield message.marker_range, message
        yield message.body_range, message
    for use in doc.names:
        yield use.range, use
    for token in doc.tokens:
        yield token.range, token
    for block in doc.blocks:
        yield block.range, block
    for problem in doc.problems:
        yield problem.range, problem


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(documents)
def test_parse_and_check_never_raise_and_ranges_lie_inside(text: str) -> None:
    doc = parse(text)
    assert doc.text == text
    assert len(doc.lines) >= 1
    assert not [p for p in doc.problems if p.code == "parse-error"], doc.problems
    for rng, what in _model_ranges(doc):
        _check_range(doc, rng, what)
    findings = check_document(doc, load_examples(doc, PROMPT_PATH), PROMPT_PATH)
    for finding in findings:
        _check_range(doc, finding.range, finding)
        for location in (*finding.related, finding.elsewhere):
            if location is not None and location.path is None:  # a place in this prompt
                _check_range(doc, location.range, finding)
        for fix in finding.fixes:
            for edit in fix.edits:
                _check_range(doc, edit.range, (finding, fix))


_LEAVES = st.sampled_from(
    [
        "text ",
        "{{ a }}",
        "{{ x }}",
        "{{ y }}",
        "{{ loop.index }}",
        "{{ b.c | upper }}",
        "{{ p if q else r }}",
        "{% set x = a %}",
        "{% set y %}{{ z }}{% endset %}",
        "{{ caller() }}",
        "{{ m(x) }}",
    ]
)


def _blocks(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        children.map(lambda c: "{% for x in xs %}" + c + "{% endfor %}"),
        children.map(
            lambda c: "{% for k, x in pairs if x %}" + c + "{% else %}{{ x }}{% endfor %}"
        ),
        st.tuples(children, children).map(
            lambda t: "{% if a %}" + t[0] + "{% else %}" + t[1] + "{% endif %}"
        ),
        children.map(lambda c: "{% macro m(p, q=r) %}" + c + "{% endmacro %}"),
        children.map(lambda c: "{% call(x) m(y) %}" + c + "{% endcall %}"),
        children.map(lambda c: "{% with y = x %}" + c + "{% endwith %}"),
        children.map(lambda c: "{% filter upper %}" + c + "{% endfilter %}"),
        st.lists(children, max_size=4).map("".join),
    )


templates = st.recursive(_LEAVES, _blocks, max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(templates)
def test_free_names_agree_with_jinja(source: str) -> None:
    """The trimmed tracker finds exactly the names Jinja's own introspection finds, and the
    names the analysis calls variables are those of them the template reads."""
    _, raw, error = _lex(source)
    assert error is None
    expected = meta.find_undeclared_variables(_parse_tokens(source, raw))
    assert _free_names(_parse_tokens(source, raw)) == expected
    doc = parse(source)
    assert doc.template_ok
    # Jinja also lists a name set in only some branches even where nothing reads it; a
    # variable is a free name that is read somewhere
    loaded = {n.name for n in _parse_tokens(source, raw).find_all(nodes.Name) if n.ctx == "load"}
    assert doc.used_variable_names == expected & loaded
