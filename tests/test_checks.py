"""Every diagnostic of `checks.check_document`: a case that fires, a near miss that must not, and
for the findings that carry a fix, the fix applied to the text makes the finding go away.

Positions in assertions are 0-based (line, character), as in the model.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from prompt_lsp.catalog.models import lookup_model
from prompt_lsp.checks import Finding, Severity, TextEdit, check_document
from prompt_lsp.evaluation.examples import clear_cache, load_examples
from prompt_lsp.format import parse
from prompt_lsp.format.model import Position, Range

# ----------------------------------------------------------------------------- helpers

_BREAK = re.compile(r"\r\n|\r|\n")


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def apply_edits(text: str, edits: tuple[TextEdit, ...] | list[TextEdit]) -> str:
    """Apply LSP-style edits, addressed by (line, character), to `text` (last edit first)."""
    starts = [0] + [m.end() for m in _BREAK.finditer(text)]

    def offset(pos: Position) -> int:
        assert pos.line < len(starts), pos
        line_end = starts[pos.line + 1] if pos.line + 1 < len(starts) else len(text)
        line_text = _BREAK.sub("", text[starts[pos.line] : line_end])
        assert pos.character <= len(line_text), (pos, line_text)
        return starts[pos.line] + pos.character

    spans = sorted((offset(e.range.start), offset(e.range.end), e.new_text) for e in edits)
    for (_, end_a, _), (start_b, _, _) in zip(spans, spans[1:], strict=False):
        assert end_a <= start_b, "overlapping edits"
    for start, end, new_text in reversed(spans):
        text = text[:start] + new_text + text[end:]
    return text


def check(text: str, path: Path | None = None, **kwargs) -> list[Finding]:
    doc = parse(text)
    return check_document(doc, load_examples(doc, path), path, **kwargs)


def of_code(findings: list[Finding], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def fixed(text: str, finding: Finding, which: int = 0) -> str:
    """`text` with the finding's fix number `which` applied."""
    assert finding.fixes, f"{finding.code} has no fix"
    return apply_edits(text, finding.fixes[which].edits)


def span(text: str, rng: Range) -> str:
    lines = _BREAK.split(text)
    assert rng.start.line == rng.end.line
    return lines[rng.start.line][rng.start.character : rng.end.character]


@pytest.fixture(autouse=True)
def _fresh_examples_cache():
    clear_cache()
    yield
    clear_cache()


def test_apply_edits_helper() -> None:
    text = "ab\r\ncd\nef"
    edits = [
        TextEdit(Range.of(0, 1, end=2), "X"),
        TextEdit(Range(Position(1, 1), Position(2, 1)), "-"),
        TextEdit(Range.of(2, 2), "!"),
    ]
    assert apply_edits(text, edits) == "aX\r\nc-f!"


CLEAN = dedent(
    """
    ---
    name: clean
    model: openai/gpt-4o-mini
    config:
      temperature: 0.7
      max_tokens: 200
    input:
      schema:
        question: string, what the user asks
        items?: array
    examples:
      - input: {question: "Why?", items: [a]}
        expected: Because.
    metrics:
      - rougeL
    ---
    system:
    You answer briefly.
    user:
    {% for x in items %}- {{ x }} ({{ loop.index }})
    {% endfor %}{{ question | trim }}
    """
)


def test_a_clean_prompt_has_no_findings() -> None:
    assert check(CLEAN) == []


def test_model_ids_used_in_these_tests_exist_in_the_bundled_map() -> None:
    for model in ("openai/gpt-4o-mini", "gpt-4o-mini", "gpt-4", "local/gemma-3-270m"):
        assert lookup_model(model) is not None, model
    assert lookup_model("gpt-4o-mnii") is None
    assert lookup_model("gpt-4").max_input_tokens == 8192


# ----------------------------------------------------------------------------- yaml-syntax


def test_yaml_syntax() -> None:
    text = "---\nname: x\nconfig:\n  temperature: [0.2\nmodel: gpt-4o\n---\nhi\n"
    (finding,) = of_code(check(text), "yaml-syntax")
    assert finding.severity == Severity.ERROR
    assert finding.range.start.line in (3, 4)
    assert finding.message.startswith("Invalid YAML")
    # near miss: colons and brackets inside quotes are fine
    assert not of_code(check('---\ndescription: "a: [b"\n---\nhi\n'), "yaml-syntax")


def test_yaml_syntax_unclosed_front_matter() -> None:
    (finding,) = of_code(check("---\nname: x\n"), "yaml-syntax")
    assert finding.range == Range.of(0, 0, end=3)
    assert "not closed" in finding.message


# ----------------------------------------------------------------------------- unknown-key


def test_unknown_key_with_did_you_mean_fix() -> None:
    text = "---\nmodle: gpt-4o-mini\nconfig:\n  temprature: 0.5\n---\nhi\n"
    findings = of_code(check(text), "unknown-key")
    assert [(f.severity, f.range) for f in findings] == [
        (Severity.WARNING, Range.of(1, 0, end=5)),
        (Severity.WARNING, Range.of(3, 2, end=12)),
    ]
    assert "Did you mean 'model'?" in findings[0].message
    assert "Did you mean 'temperature'?" in findings[1].message
    assert findings[0].fixes[0].preferred
    repaired = fixed(fixed(text, findings[1]), findings[0])
    assert repaired == "---\nmodel: gpt-4o-mini\nconfig:\n  temperature: 0.5\n---\nhi\n"
    assert not of_code(check(repaired), "unknown-key")


def test_unknown_key_near_misses() -> None:
    text = dedent(
        """
        ---
        name: x
        displayName: X
        metadata: {authors: [me]}
        tags: [a]
        config:
          logprobs: true
          api_base: http://localhost:8000
        eval:
          concurrency: 4
        ---
        hi
        """
    )
    # Prompty keys are known; a provider parameter without a near match passes through
    assert not of_code(check(text), "unknown-key")


def test_unknown_key_without_suggestion_has_no_fix() -> None:
    (finding,) = of_code(check("---\nzzzqqq: 1\n---\nhi\n"), "unknown-key")
    assert finding.fixes == ()
    assert "Did you mean" not in finding.message


# ----------------------------------------------------------------------------- invalid-value


@pytest.mark.parametrize(
    ("line", "written"),
    [
        ("  temperature: hot", "hot"),
        ("  temperature: 3", "3"),
        ("  temperature: true", "true"),
        ("  max_tokens: -5", "-5"),
        ("  max_tokens: 1.5", "1.5"),
        ("  top_p: 2", "2"),
        ("  maxOutputTokens: 0", "0"),
        ("  stop: 5", "5"),
    ],
)
def test_invalid_config_values(line: str, written: str) -> None:
    text = f"---\nconfig:\n{line}\n---\nhi\n"
    (finding,) = of_code(check(text), "invalid-value")
    assert finding.severity == Severity.ERROR
    assert finding.range == Range.of(2, line.index(written), end=len(line))
    assert span(text, finding.range) == written


@pytest.mark.parametrize(
    "line",
    [
        "  temperature: 0.7",
        "  temperature: 0",
        "  temperature: 2",
        "  max_tokens: 100",
        "  top_p: 1",
        "  stop: END",
        '  stop: ["a", "b"]',
        "  seed: 42",
    ],
)
def test_valid_config_values(line: str) -> None:
    assert not of_code(check(f"---\nconfig:\n{line}\n---\nhi\n"), "invalid-value")


@pytest.mark.parametrize(
    ("line", "repaired"),
    [
        ('    n: "integr, how many"', '    n: "integer, how many"'),
        ("    n: 'integr'", "    n: 'integer'"),
        ("    n:   integr   # a comment", "    n:   integer   # a comment"),
        ('    n(integr, how many): ""', '    n(integer, how many): ""'),
        ('    n?( integr ): ""', '    n?( integer ): ""'),
    ],
)
def test_schema_type_fix_replaces_just_the_type(line: str, repaired: str) -> None:
    text = f"---\ninput:\n  schema:\n{line}\n---\n{{{{ n }}}}\n"
    (finding,) = of_code(check(text), "invalid-value")
    assert span(text, finding.range) == "integr"
    assert fixed(text, finding) == text.replace(line, repaired)
    assert not of_code(check(fixed(text, finding)), "invalid-value")


def test_prompty_model_options_are_checked_like_config() -> None:
    text = "---\nmodel:\n  id: gpt-4o\n  options:\n    temperature: hot\n    maxOutputTokens: 100\n---\nhi\n"
    (finding,) = of_code(check(text), "invalid-value")
    assert span(text, finding.range) == "hot"
    v1 = "---\nmodel:\n  api: chat\n  parameters:\n    max_tokens: -1\n---\nhi\n"
    (finding,) = of_code(check(v1), "invalid-value")
    assert span(v1, finding.range) == "-1"


def test_invalid_schema_type_with_fix() -> None:
    text = "---\ninput:\n  schema:\n    n: integr, how many\n---\n{{ n }}\n"
    (finding,) = of_code(check(text), "invalid-value")
    assert finding.range == Range.of(3, 7, end=13)
    assert "Did you mean 'integer'?" in finding.message
    repaired = fixed(text, finding)
    assert "n: integer, how many" in repaired
    assert not of_code(check(repaired), "invalid-value")
    # near miss: every Picoschema type
    for kind in ("string", "integer", "number", "boolean", "array", "object", "any"):
        assert not of_code(
            check(f"---\ninput:\n  schema:\n    n: {kind}\n---\n{{{{ n }}}}"), "invalid-value"
        )


def test_invalid_shapes_of_top_level_values() -> None:
    text = dedent(
        """
        ---
        name: [not, a, string]
        tokens: "<start>"
        metrics:
          - 42
          - {name: rouge1, threshold: 1.5}
        eval:
          cache: maybe
          concurrency: 0
        ---
        hi
        """
    )
    findings = of_code(check(text), "invalid-value")
    assert [f.range.start.line for f in findings] == [1, 2, 4, 5, 7, 8]
    assert not of_code(
        check("---\nmetrics:\n  - {name: rouge1, threshold: 0.3}\neval: {cache: true}\n---\nhi\n"),
        "invalid-value",
    )


# ----------------------------------------------------------------------------- template-syntax


def test_template_syntax_error_at_the_right_line_and_column() -> None:
    text = "---\nname: x\n---\nuser:\nHello\nWorld {{ name }\n"
    (finding,) = of_code(check(text), "template-syntax")
    assert finding.severity == Severity.ERROR
    assert finding.range.start == Position(5, 6)
    text = "---\nname: x\n---\nok\n{% if a %}\nyes\n"
    (finding,) = of_code(check(text), "template-syntax")
    assert finding.range == Range.of(4, 0, end=2)
    assert "{% endif %}" in finding.message
    assert not of_code(check("---\nname: x\n---\n{% if a %}yes{% endif %}\n"), "template-syntax")


# ----------------------------------------------------------------------------- undefined-variable


def test_undefined_variable_against_the_schema() -> None:
    text = dedent(
        """
        ---
        input:
          schema:
            question: string
        ---
        {{ question }} {{ answer.text }} {{ hints[0] }}
        {% for x in xs %}{{ x }}{% endfor %}
        """
    )
    findings = of_code(check(text), "undefined-variable")
    assert [(f.severity, span(text, f.range)) for f in findings] == [
        (Severity.ERROR, "answer"),
        (Severity.ERROR, "hints"),
        (Severity.ERROR, "xs"),
    ]
    assert findings[0].range == Range.of(5, 18, end=24)
    assert findings[0].related and findings[0].related[0].range == Range.of(2, 2, end=8)


def test_undefined_variable_near_misses() -> None:
    text = dedent(
        """
        ---
        input:
          schema:
            xs: array
          default:
            sep: ", "
        ---
        {% for x in xs %}{{ x }}{{ loop.index }}{{ sep }}{% endfor %}
        {% set total = xs | length %}{{ total }}
        {% macro item(v) %}<{{ v }}>{% endmacro %}{{ item(1) }}
        """
    )
    assert not of_code(check(text), "undefined-variable")


def test_undefined_variable_with_only_defaults() -> None:
    text = "---\ninput:\n  default:\n    a: 1\n---\n{{ a }}{{ b }}\n"
    (finding,) = of_code(check(text), "undefined-variable")
    assert span(text, finding.range) == "b"


def test_without_schema_the_examples_declare_the_variables(tmp_path: Path) -> None:
    (tmp_path / "cases.jsonl").write_text('{"input": {"a": 1}}\n{"input": {"b": 2}}\n')
    text = "---\nexamples: cases.jsonl\n---\n{{ a }} {{ b }} {{ c }}\n"
    findings = of_code(check(text, tmp_path / "p.prompt"), "undefined-variable")
    assert [span(text, f.range) for f in findings] == ["c"]
    assert "the examples" in findings[0].message
    # with neither a schema nor examples there is nothing to check against
    assert not of_code(check("---\nname: x\n---\n{{ anything }}\n"), "undefined-variable")


@pytest.mark.parametrize(
    "text",
    [
        # an existing block schema
        "---\ninput:\n  schema:\n    a: string\n---\n{{ a }} {{ b }}\n",
        # a schema with a multi-line last value
        "---\ninput:\n  schema:\n    a:\n      x: string\n  default: {}\n---\n{{ a }} {{ b }}\n",
        # an empty flow schema
        "---\ninput:\n  schema: {}\n---\n{{ b }}\n",
        # input with defaults but no schema
        "---\ninput:\n  default:\n    a: 1\n---\n{{ a }} {{ b }}\n",
        # input.schema under other keys, CRLF line endings
        "---\r\nname: x\r\ninput:\r\n  schema:\r\n    a: string\r\nmodel: gpt-4o\r\n---\r\n{{ a }}{{ b }}\r\n",
        # the last field is a block value that ends the front matter
        "---\ninput:\n  schema:\n    a:\n      x: string\n---\n{{ a }}{{ b }}\n",
        # a flow schema
        "---\ninput:\n  schema: {a: string}\n---\n{{ a }} {{ b }}\n",
        # Prompty inputs: v1 mapping, v2 list, flow forms; the new input goes into `inputs:`
        "---\ninputs:\n  a:\n    type: string\n  c: 1\n---\n{{ a }}{{ b }}{{ c }}\n",
        "---\ninputs:\n  - name: a\n    kind: string\n  - name: c\n    default: x\n---\n{{ a }}{{ b }}{{ c }}\n",
        "---\ninputs:\n- name: a\n  kind: string\nmodel: gpt-4o\n---\n{{ a }}{{ b }}\n",
        "---\ninputs: {a: {type: string}}\n---\n{{ a }}{{ b }}\n",
        "---\ninputs: [{name: a, kind: string}]\n---\n{{ a }}{{ b }}\n",
    ],
)
def test_declare_variable_fix_removes_the_finding(text: str) -> None:
    (finding,) = of_code(check(text), "undefined-variable")
    fix = finding.fixes[0]
    assert fix.preferred and fix.title.startswith("Declare 'b' in input")
    repaired = fixed(text, finding)
    doc = parse(repaired)
    assert not [p for p in doc.problems if p.code == "yaml-syntax"], repaired
    assert "b" in doc.declared_names, repaired
    assert not of_code(check(repaired), "undefined-variable"), repaired


def test_declare_fix_creates_the_schema_in_examples_mode(tmp_path: Path) -> None:
    (tmp_path / "cases.jsonl").write_text('{"input": {"a": 1}}\n')
    text = "---\nexamples: cases.jsonl\n---\n{{ a }} {{ b }}\n"
    path = tmp_path / "p.prompt"
    (finding,) = of_code(check(text, path), "undefined-variable")
    repaired = fixed(text, finding)
    # `a`, which the examples give, is declared with `b` (else the new schema leaves it
    # undeclared), and `b`, which no example gives, is optional (else every example lacks it)
    assert "input:\n  schema:\n    a: string\n    b?: string\n" in repaired
    after = check(repaired, path)
    assert not of_code(after, "yaml-syntax")
    assert not [f for f in after if f.severity == Severity.ERROR], after


def test_declare_fix_leaves_fewer_problems_than_it_found(tmp_path: Path) -> None:
    """The issue's case: examples lack the new variable, so a required one would turn one
    error into one per example."""
    (tmp_path / "cases.jsonl").write_text(
        "".join(f'{{"input": {{"article": "text {n}"}}}}\n' for n in range(14))
    )
    text = (
        "---\nexamples: cases.jsonl\ninput:\n  schema:\n    article: string\n---\n"
        "{{ article }} about {{ topic }}\n"
    )
    path = tmp_path / "p.prompt"
    before = check(text, path)
    (finding,) = of_code(before, "undefined-variable")
    (fix,) = finding.fixes
    assert fix.title == "Declare 'topic' in input.schema (optional)"
    after = check(fixed(text, finding), path)
    assert len(after) < len(before), after
    assert not [f for f in after if f.severity == Severity.ERROR], after


# ----------------------------------------------------------------------------- unused-variable


def test_unused_variable_is_an_unnecessary_hint_with_a_removal_fix() -> None:
    text = "---\ninput:\n  schema:\n    used: string\n    spare: string\n---\n{{ used.x }}\n"
    (finding,) = of_code(check(text), "unused-variable")
    assert finding.severity == Severity.HINT
    assert finding.unnecessary
    assert finding.range == Range.of(4, 4, end=9)
    repaired = fixed(text, finding)
    assert repaired == "---\ninput:\n  schema:\n    used: string\n---\n{{ used.x }}\n"
    assert check(repaired) == of_code(check(repaired), "no-examples")


@pytest.mark.parametrize(
    "text",
    [
        "---\ninput:\n  schema:\n    spare:\n      x: string\n    a: string\n---\n{{ a }}\n",
        "---\ninput:\n  schema: {a: string, spare: string}\n---\n{{ a }}\n",
        "---\ninput:\n  schema: {spare: string, a: string}\n---\n{{ a }}\n",
        "---\ninput:\n  schema: {spare: string}\n---\nhi\n",
        "---\ninputs:\n  a:\n    type: string\n  spare:\n    type: string\n    default: x\n  c: 1\n---\n{{ a }}{{ c }}\n",
        "---\ninputs:\n  - name: a\n    kind: string\n  - name: spare\n    kind: string\n  - name: c\n---\n{{ a }}{{ c }}\n",
        "---\ninput:\n  schema:\n    type: object\n    properties:\n      a: {type: string}\n      spare:\n        type: string\n---\n{{ a }}\n",
    ],
)
def test_removing_an_unused_input_keeps_the_rest_intact(text: str) -> None:
    before = parse(text)
    (finding,) = of_code(check(text), "unused-variable")
    assert span(text, finding.range) == "spare"
    repaired = fixed(text, finding)
    after = parse(repaired)
    assert after.problems == [], repaired
    assert after.declared_names == before.declared_names - {"spare"}, repaired
    assert {f.name: f.type for f in after.schema} == {
        f.name: f.type for f in before.schema if f.name != "spare"
    }
    assert not of_code(check(repaired), "unused-variable")


def test_unused_variable_is_not_reported_while_the_template_is_broken() -> None:
    text = "---\ninput:\n  schema:\n    a: string\n---\n{{ a \n"
    assert not of_code(check(text), "unused-variable")


# ----------------------------------------------------------------------------- unknown-filter


def test_unknown_filter_and_test_with_fix() -> None:
    text = "{{ name | uper }} {% if n is oddd %}x{% endif %}{% filter lowr %}y{% endfilter %}\n"
    findings = of_code(check(text), "unknown-filter")
    assert [(f.severity, span(text, f.range)) for f in findings] == [
        (Severity.ERROR, "uper"),
        (Severity.ERROR, "oddd"),
        (Severity.ERROR, "lowr"),
    ]
    assert "filter 'uper'" in findings[0].message and "Did you mean 'upper'?" in findings[0].message
    assert "test 'oddd'" in findings[1].message
    repaired = text
    for finding in reversed(findings):
        repaired = fixed(repaired, finding)
    assert repaired.startswith("{{ name | upper }} {% if n is odd %}")
    assert not of_code(check(repaired), "unknown-filter")
    assert not of_code(check(repaired), "template-syntax")


def test_known_filters_and_tests() -> None:
    text = (
        "{{ a | upper | default('x') | tojson }}{% if a is defined and a is not none %}{% endif %}"
    )
    assert not of_code(check(text), "unknown-filter")


def test_an_unknown_filter_is_not_also_a_syntax_error() -> None:
    findings = check("---\ninput:\n  schema:\n    a: string\n---\n{{ a | nosuch }} {{ b }}\n")
    assert "template-syntax" not in codes(findings)
    assert {"unknown-filter", "undefined-variable"} <= codes(findings)


# ----------------------------------------------------------------------------- unknown-model


def test_unknown_model_with_did_you_mean_fix() -> None:
    text = "---\nmodel: gpt-4o-mnii\n---\nhi\n"
    (finding,) = of_code(check(text), "unknown-model")
    assert finding.severity == Severity.WARNING
    assert finding.range == Range.of(1, 7, end=18)
    assert "Did you mean 'gpt-4o-mini'?" in finding.message
    repaired = fixed(text, finding)
    assert repaired == "---\nmodel: gpt-4o-mini\n---\nhi\n"
    assert not of_code(check(repaired), "unknown-model")


def test_unknown_prompty_model_id_is_fixed_where_it_is_written() -> None:
    text = "---\nmodel:\n  id: gpt-4o-mnii\n  options: {temperature: 0}\n---\nhi\n"
    (finding,) = of_code(check(text), "unknown-model")
    assert span(text, finding.range) == "gpt-4o-mnii"
    assert not of_code(check(fixed(text, finding)), "unknown-model")
    v1 = "---\nmodel:\n  configuration:\n    type: openai\n    name: gpt-4o-mnii\n---\nhi\n"
    (finding,) = of_code(check(v1), "unknown-model")
    assert span(v1, finding.range) == "model" and finding.fixes == ()


def test_a_typo_under_a_known_provider_is_an_unknown_model() -> None:
    """`openai/` routes anything, but the catalog lists openai's models: one slip from one of
    them is a typo, not a new model."""
    text = "---\nmodel: openai/gpt-4o-minii\n---\nhi\n"
    (finding,) = of_code(check(text), "unknown-model")
    assert "not among the openai models" in finding.message
    assert "Did you mean 'openai/gpt-4o-mini'?" in finding.message
    repaired = fixed(text, finding)
    assert repaired == "---\nmodel: openai/gpt-4o-mini\n---\nhi\n"
    assert not of_code(check(repaired), "unknown-model")


@pytest.mark.parametrize(
    "model",
    [
        "openai/gpt-9o-mini",  # a slip in a digit: maybe a model newer than the catalog
        "openai/my-finetune-2027",  # far from every listed name
    ],
)
def test_unlisted_models_under_a_known_provider_pass(model: str) -> None:
    assert not of_code(check(f"---\nmodel: {model}\n---\nhi\n"), "unknown-model")


def test_did_you_mean_only_for_close_matches() -> None:
    """The issue's case: `temprature:` at the top level suggested `template` (similar letters,
    five slips away); the key meant is `config:`'s `temperature`, one slip away."""
    (top,) = of_code(check("---\ntemprature: 0\n---\nhi\n"), "unknown-key")
    assert "'temperature' (a setting under `config:`)" in top.message
    assert "template" not in top.message and top.fixes == ()
    (nested,) = of_code(check("---\nconfig:\n  temprature: 0\n---\nhi\n"), "unknown-key")
    assert [f.title for f in nested.fixes] == ["Change key to 'temperature'"]
    (far,) = of_code(check("---\nxyzzy: 1\n---\nhi\n"), "unknown-key")
    assert "Did you mean" not in far.message


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o-mini",
        "openai/gpt-4o-mini",
        "local/gemma-3-270m",
        "local/models/my.gguf",
        "ollama/anything-i-pulled",
        "anthropic/claude-sonnet-4-5",
    ],
)
def test_known_models(model: str) -> None:
    assert not of_code(check(f"---\nmodel: {model}\n---\nhi\n"), "unknown-model")


def test_unknown_provider_and_local_non_gguf() -> None:
    assert of_code(check("---\nmodel: opnai/gpt-4o-mini\n---\nhi\n"), "unknown-model")
    assert of_code(check("---\nmodel: local/not-a-file\n---\nhi\n"), "unknown-model")


# ----------------------------------------------------------------------------- context-overflow


def test_context_overflow_renders_the_longest_example(tmp_path: Path) -> None:
    big = "lorem " * 10_000  # ~10,000 tokens: over gpt-4's 8,192
    rows = [{"input": {"text": "short"}}, {"id": "huge", "input": {"text": big}}]
    (tmp_path / "cases.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    text = "---\nmodel: gpt-4\nexamples: cases.jsonl\n---\n{{ text }}\n"
    (finding,) = of_code(check(text, tmp_path / "p.prompt"), "context-overflow")
    assert finding.severity == Severity.WARNING
    assert finding.range == Range.of(2, 10, end=21)  # the `examples:` value
    assert "Example huge" in finding.message and "8,192" in finding.message
    assert finding.related[0].path == tmp_path / "cases.jsonl"
    assert finding.related[0].range.start.line == 1
    # near miss: the same example fits a 128k-token model
    roomy = "---\nmodel: gpt-4o-mini\nexamples: cases.jsonl\n---\n{{ text }}\n"
    assert not of_code(check(roomy, tmp_path / "p.prompt"), "context-overflow")


def test_context_overflow_stops_rendering_a_runaway_loop(tmp_path: Path) -> None:
    # 100,000 copies of a 20,000-character input would be 2 GB of text: rendering stops early
    (tmp_path / "cases.jsonl").write_text(json.dumps({"input": {"a": "x" * 20_000}}) + "\n")
    text = "---\nmodel: gpt-4o-mini\nexamples: cases.jsonl\n---\n{% for i in range(100000) %}{{ a }}{% endfor %}\n"
    (finding,) = of_code(check(text, tmp_path / "p.prompt"), "context-overflow")
    assert "renders to over " in finding.message


def test_context_overflow_counts_tokens_not_characters(tmp_path: Path) -> None:
    # 2,000 characters of mathematical letters: each takes several tokens (≈ 5,500 in all)
    dense = "\U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522 " * 250
    (tmp_path / "cases.jsonl").write_text(json.dumps({"input": {"t": dense * 2}}) + "\n")
    text = "---\nmodel: gpt-4\nexamples: cases.jsonl\n---\n{{ t }}\n"
    assert of_code(check(text, tmp_path / "p.prompt"), "context-overflow")


# ----------------------------------------------------------------------------- unbalanced-token


@pytest.mark.parametrize(
    ("body", "token", "closer"),
    [
        ("<start>{{ a }}", "<start>", "<end>"),
        ("<article>{{ a }}", "<article>", "</article>"),
        ("[INST] {{ a }}", "[INST]", "[/INST]"),
        ("<|im_start|>user {{ a }}", "<|im_start|>", "<|im_end|>"),
    ],
)
def test_unbalanced_opening_token_with_closing_fix(body: str, token: str, closer: str) -> None:
    text = f"---\nmodel: some-llama-2-mistral-chatml-model\n---\n{body}\n"
    findings = of_code(check(text), "unbalanced-token")
    assert [(f.severity, span(text, f.range)) for f in findings] == [(Severity.WARNING, token)]
    assert f"never closed with '{closer}'" in findings[0].message
    repaired = fixed(text, findings[0])
    assert repaired.endswith(body + closer + "\n")
    assert not of_code(check(repaired), "unbalanced-token")


def test_closing_token_without_opening() -> None:
    text = "a <end> b </article>\n"
    findings = of_code(check(text), "unbalanced-token")
    assert [span(text, f.range) for f in findings] == ["<end>", "</article>"]
    assert "closes '<start>'" in findings[0].message


@pytest.mark.parametrize(
    "body",
    [
        "<start>{{ a }}<end>",
        "<start>\n{{ a }}\n<end>",
        "<doc><start>x<end></doc>",
        "[INST] hi [/INST] ok </s>",
        "{% for x in xs %}<item>{{ x }}</item>{% endfor %}",
        "<s>[INST] a [/INST] b</s>",
    ],
)
def test_balanced_tokens(body: str) -> None:
    assert not of_code(check(body), "unbalanced-token")


def test_a_declared_token_is_not_a_tag_to_close() -> None:
    text = "---\ntokens: ['<sep>', '<doc>', '</doc>']\n---\na <sep> b <doc>c\n"
    findings = of_code(check(text), "unbalanced-token")
    assert [span(text, f.range) for f in findings] == ["<doc>"]  # its closer is declared too


# ----------------------------------------------------------------------------- foreign-token


def test_foreign_token_of_another_family() -> None:
    text = "---\nmodel: openai/gpt-4o-mini\n---\n[INST] hi [/INST] <start_of_turn>\n"
    findings = of_code(check(text), "foreign-token")
    assert [span(text, f.range) for f in findings] == ["[INST]", "[/INST]", "<start_of_turn>"]
    assert all(f.severity == Severity.WARNING for f in findings)
    assert "ChatML" in findings[0].message


def test_foreign_token_uses_the_default_model() -> None:
    text = "<|im_start|>user\nhi<|im_end|>\n"
    (first, second) = of_code(check(text), "foreign-token")  # local/gemma-3-270m: Gemma
    assert "Gemma" in first.message
    assert not of_code(check(text, default_model="openai/gpt-4o-mini"), "foreign-token")


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("local/gemma-3-270m", "<start_of_turn>user\nhi<end_of_turn>"),
        ("openai/gpt-4o-mini", "<|im_start|>user\nhi<|im_end|>"),
        ("ollama/llama3", "<|start_header_id|>user<|end_header_id|>\nhi<|eot_id|>"),
        ("openai/gpt-4o-mini", "<start>{{ a }}<end> [SEP]"),  # seed tokens suit any model
        ("anthropic/claude-sonnet-4-5", "[INST] no family known for this model [/INST]"),
    ],
)
def test_own_family_and_seed_tokens_are_not_foreign(model: str, body: str) -> None:
    assert not of_code(check(f"---\nmodel: {model}\n---\n{body}\n"), "foreign-token")


def test_declared_tokens_are_not_foreign() -> None:
    text = "---\nmodel: openai/gpt-4o-mini\ntokens: ['[INST]', '[/INST]']\n---\n[INST] x [/INST]\n"
    assert not of_code(check(text), "foreign-token")


# ----------------------------------------------------------------------------- examples file


def test_examples_not_found_with_create_file_fix(tmp_path: Path) -> None:
    text = "---\ninput:\n  schema:\n    a: string\nexamples: cases.jsonl\n---\n{{ a }}\n"
    path = tmp_path / "p.prompt"
    (finding,) = of_code(check(text, path), "examples-not-found")
    assert finding.severity == Severity.ERROR
    assert finding.range == Range.of(4, 10, end=21)
    (fix,) = finding.fixes
    assert fix.create_file == tmp_path / "cases.jsonl"
    assert json.loads(fix.file_content) == {"input": {"a": ""}, "expected": ""}
    fix.create_file.write_text(fix.file_content)
    assert not of_code(check(text, path), "examples-not-found")


@pytest.mark.parametrize("name", ["cases.csv", "cases.yaml", "cases.json"])
def test_create_file_fix_content_parses_in_each_format(tmp_path: Path, name: str) -> None:
    text = f"---\ninput:\n  schema:\n    a: string\nexamples: {name}\n---\n{{{{ a }}}}\n"
    path = tmp_path / "p.prompt"
    (finding,) = of_code(check(text, path), "examples-not-found")
    fix = finding.fixes[0]
    fix.create_file.write_text(fix.file_content)
    findings = check(text, path)
    assert not codes(findings) & {"examples-not-found", "examples-syntax"}


def test_examples_path_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "cases.jsonl").mkdir()
    (finding,) = of_code(
        check("---\nexamples: cases.jsonl\n---\nhi\n", tmp_path / "p.prompt"), "examples-not-found"
    )
    assert "not a file" in finding.message


def test_examples_syntax_reports_the_examples_file_line(tmp_path: Path) -> None:
    (tmp_path / "cases.jsonl").write_text('{"input": {"a": 1}}\n\n{"input": {"a": 2}\n7\n')
    text = "---\nexamples: cases.jsonl\n---\n{{ a }}\n"
    findings = of_code(check(text, tmp_path / "p.prompt"), "examples-syntax")
    assert [f.severity for f in findings] == [Severity.ERROR, Severity.ERROR]
    assert [f.elsewhere.range.start.line for f in findings] == [2, 3]
    assert all(f.elsewhere.path == tmp_path / "cases.jsonl" for f in findings)
    assert findings[0].message.startswith("cases.jsonl:3: invalid JSON")
    assert findings[0].range == Range.of(1, 10, end=21)  # shown on `examples:` in the prompt
    (tmp_path / "good.jsonl").write_text('{"input": {"a": 1}}\n')
    assert not of_code(
        check("---\nexamples: good.jsonl\n---\n{{ a }}\n", tmp_path / "p.prompt"), "examples-syntax"
    )


def test_examples_syntax_in_csv(tmp_path: Path) -> None:
    (tmp_path / "cases.csv").write_text("a,expected\n1,x\n2,y,z\n")
    (finding,) = of_code(
        check("---\nexamples: cases.csv\n---\n{{ a }}\n", tmp_path / "p.prompt"), "examples-syntax"
    )
    assert finding.elsewhere.range.start.line == 2
    assert "more fields" in finding.message


def test_examples_syntax_is_capped(tmp_path: Path) -> None:
    (tmp_path / "cases.jsonl").write_text("{bad\n" * 500)
    findings = of_code(
        check("---\nexamples: cases.jsonl\n---\nx\n", tmp_path / "p.prompt"), "examples-syntax"
    )
    assert len(findings) == 20


def test_inline_example_problems_point_into_the_prompt() -> None:
    text = "---\nexamples:\n  - input: {a: 1}\n  - just a string\n---\n{{ a }}\n"
    (finding,) = of_code(check(text), "examples-syntax")
    assert finding.elsewhere.path is None
    assert finding.elsewhere.range.start.line == 3


# ----------------------------------------------------------------------------- example-missing-variable


def test_example_missing_required_variable(tmp_path: Path) -> None:
    rows = [
        {"input": {"article": "a", "sentences": 2}},
        {"id": "no-article", "input": {"sentences": 2}},
        {"input": {"article": "b"}},  # `sentences` is optional and has a default
    ]
    (tmp_path / "cases.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    text = dedent(
        """
        ---
        input:
          schema:
            article: string
            sentences?: integer
          default:
            sentences: 3
        examples: cases.jsonl
        ---
        {{ article }} {{ sentences }}
        """
    )
    (finding,) = of_code(check(text, tmp_path / "p.prompt"), "example-missing-variable")
    assert finding.severity == Severity.ERROR
    assert "Example no-article (line 2)" in finding.message and "'article'" in finding.message
    assert finding.elsewhere.path == tmp_path / "cases.jsonl"
    assert finding.elsewhere.range.start.line == 1


def test_example_missing_variable_near_misses(tmp_path: Path) -> None:
    (tmp_path / "cases.jsonl").write_text('{"input": {"a": 1}}\n')
    text = "---\ninput:\n  schema:\n    a: string\n    b?: string\n    c: string\n  default:\n    c: x\nexamples: cases.jsonl\n---\n{{ a }}{{ b }}{{ c }}\n"
    assert not of_code(check(text, tmp_path / "p.prompt"), "example-missing-variable")


# ----------------------------------------------------------------------------- missing-expected


def test_missing_expected_for_metrics_that_need_it(tmp_path: Path) -> None:
    (tmp_path / "cases.jsonl").write_text(
        '{"input": {"a": 1}, "expected": "x"}\n{"id": "e2", "input": {"a": 2}}\n{"input": {"a": 3}, "expected": ""}\n'
    )
    text = "---\nexamples: cases.jsonl\nmetrics:\n  - json_valid\n  - rougeL\n  - {name: regex, pattern: '^ok'}\n---\n{{ a }}\n"
    (finding,) = of_code(check(text, tmp_path / "p.prompt"), "missing-expected")
    assert finding.severity == Severity.WARNING
    assert finding.range == Range.of(4, 4, end=10)
    assert "2 of 3 examples lack (e2, 3)" in finding.message
    (tmp_path / "full.jsonl").write_text('{"input": {"a": 1}, "expected": "x"}\n')
    full = text.replace("cases.jsonl", "full.jsonl")
    assert not of_code(check(full, tmp_path / "p.prompt"), "missing-expected")


# ----------------------------------------------------------------------------- unknown-metric


def test_unknown_metric_with_fix() -> None:
    text = "---\nmetrics:\n  - rouge_l\n  - {name: exactmatch, threshold: 0.5}\n---\nhi\n"
    findings = of_code(check(text), "unknown-metric")
    assert [(f.severity, span(text, f.range)) for f in findings] == [
        (Severity.ERROR, "rouge_l"),
        (Severity.ERROR, "exactmatch"),
    ]
    assert "Did you mean 'rougeL'?" in findings[0].message
    repaired = fixed(fixed(text, findings[1]), findings[0])
    assert "- rougeL\n  - {name: exact_match," in repaired
    assert not of_code(check(repaired), "unknown-metric")
    assert not of_code(
        check("---\nmetrics: [rougeL, contains, llm_judge]\n---\nhi\n"), "unknown-metric"
    )


# ----------------------------------------------------------------------------- empty-message


def test_empty_message() -> None:
    text = "system:\n\nuser:\n{{ q }}\nassistant:\n"
    findings = of_code(check(text), "empty-message")
    assert [(f.severity, f.range) for f in findings] == [
        (Severity.WARNING, Range.of(0, 0, end=7)),
        (Severity.WARNING, Range.of(4, 0, end=10)),
    ]
    assert not of_code(check("system:\nrules\nuser:\n{{ q }}\n"), "empty-message")


# ----------------------------------------------------------------------------- no-examples


def test_no_examples_is_information() -> None:
    (finding,) = of_code(check("---\nname: x\n---\nhi\n"), "no-examples")
    assert finding.severity == Severity.INFORMATION
    assert finding.range == Range.of(0, 0, end=3)
    assert not of_code(check("---\nexamples: [{input: {}}]\n---\nhi\n"), "no-examples")
    assert not of_code(check(""), "no-examples")


# ----------------------------------------------------------------------------- general


def test_findings_are_sorted_and_ranges_lie_in_the_document(tmp_path: Path) -> None:
    text = dedent(
        """
        ---
        modle: x
        model: gpt-4o-mnii
        config: {temperature: hot}
        input:
          schema:
            a: strng
        examples: nope.jsonl
        metrics: [rouge_l]
        ---
        system:
        {{ b | uper }} <start> [INST]
        assistant:
        """
    )
    findings = check(text, tmp_path / "p.prompt")
    assert [(f.range.start, f.severity) for f in findings] == sorted(
        (f.range.start, f.severity) for f in findings
    )
    lines = text.split("\n")
    for finding in findings:
        for pos in (finding.range.start, finding.range.end):
            assert pos.line < len(lines) and pos.character <= len(lines[pos.line])
    assert {
        "unknown-key",
        "unknown-model",
        "invalid-value",
        "examples-not-found",
        "unknown-metric",
        "undefined-variable",
        "unused-variable",
        "unknown-filter",
        "unbalanced-token",
        "foreign-token",
        "empty-message",
    } <= codes(findings)


# ----------------------------------------------------------------------------- corpus

CORPUS = Path(__file__).parent / "corpus"
CORPUS_FILES = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".prompt", ".prompty"))


def _expected(prompt: Path) -> list[str]:
    sidecar = prompt.with_suffix(".expected")
    assert sidecar.exists(), f"{sidecar} is missing"
    lines = (line.split("#", 1)[0].strip() for line in sidecar.read_text().splitlines())
    return [" ".join(line.split()) for line in lines if line]


def _reported(prompt: Path) -> list[str]:
    text = prompt.read_bytes().decode("utf-8", errors="replace")
    reported = []
    doc = parse(text)
    for f in check_document(doc, load_examples(doc, prompt.resolve()), prompt.resolve()):
        line = f"{f.range.start.line + 1}:{f.range.start.character + 1} {f.severity.label} {f.code}"
        if f.elsewhere is not None and f.elsewhere.path is not None:
            line += f" -> {f.elsewhere.path.name}:{f.elsewhere.range.start.line + 1}"
        reported.append(line)
    return reported


def test_the_corpus_is_there() -> None:
    assert len(CORPUS_FILES) >= 15
    assert {p.parent.name for p in CORPUS_FILES} == {"broken", "compat"}


@pytest.mark.parametrize("prompt", CORPUS_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus(prompt: Path) -> None:
    assert _reported(prompt) == _expected(prompt)


@pytest.mark.parametrize("prompt", sorted((CORPUS / "compat").iterdir()), ids=lambda p: p.name)
def test_compat_files_check_clean(prompt: Path) -> None:
    if prompt.suffix not in (".prompt", ".prompty"):
        return
    doc = parse(prompt.read_text())
    findings = check_document(doc, load_examples(doc, prompt), prompt)
    assert [f for f in findings if f.severity <= Severity.WARNING] == []


def test_compat_files_are_read_through_their_aliases() -> None:
    v1 = parse((CORPUS / "compat" / "prompty_v1.prompty").read_text())
    assert v1.model_id == "azure/gpt-35-turbo"
    assert v1.metadata["config"] == {"max_tokens": 3000, "temperature": 0.2}
    assert [f.name for f in v1.schema] == ["firstName", "context", "question"]
    assert v1.metadata["examples"][0]["input"]["firstName"] == "Seth"
    v2 = parse((CORPUS / "compat" / "prompty_v2.prompty").read_text())
    assert v2.model_id == "gpt-4o-mini"
    assert v2.metadata["config"] == {"temperature": 0.7, "max_tokens": 1000}
    assert {f.name: f.optional for f in v2.schema} == {
        "firstName": True,
        "question": False,
        "history": True,
    }
    dot = parse((CORPUS / "compat" / "dotprompt.prompt").read_text())
    assert dot.metadata["config"] == {
        "temperature": 0.9,
        "max_tokens": 256,
        "top_p": 0.8,
        "top_k": 40,
        "stop": ["\n\n"],
    }
    assert dot.defaults == {"location": "a restaurant"}


def test_a_file_too_large_to_analyse_reports_no_unused_inputs() -> None:
    text = (
        "---\ninput:\n  schema:\n    topic: string\n---\n{{ topic }}\n" + "filler line\n" * 100_000
    )
    findings = check(text)
    assert "too-large" in {f.code for f in findings}
    assert "unused-variable" not in {f.code for f in findings}


def test_findings_of_one_code_are_capped() -> None:
    findings = check("<start> " * 400 + "\n")
    unbalanced = [f for f in findings if f.code == "unbalanced-token"]
    assert len(unbalanced) == 51
    assert unbalanced[-1].message == "350 more 'unbalanced-token' findings are not shown."
    assert unbalanced[-1].severity == Severity.INFORMATION


def test_an_empty_examples_list_says_evaluate_is_not_available() -> None:
    assert codes(check("---\nexamples: []\n---\nhi\n")) == {"no-examples"}
    assert "no-examples" not in codes(check("---\nexamples:\n  - {input: {}}\n---\nhi\n"))


def test_a_relative_examples_path_in_an_unsaved_prompt_is_not_read_from_the_cwd() -> None:
    findings = check("---\nexamples: x.jsonl\n---\nhi\n", None)
    assert [(f.code, f.message) for f in findings] == [
        (
            "examples-not-found",
            "Examples: save the prompt first: its examples path is relative to it.",
        )
    ]
