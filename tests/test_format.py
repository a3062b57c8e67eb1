"""The document model: `format.parse` and the pure parsers behind it (front matter, Picoschema,
messages, Jinja analysis, special tokens, examples, rendering).

Positions are 0-based (line, character) throughout, as in the model.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import meta

from prompt_lsp.evaluation.examples import clear_cache, load_examples, load_examples_file
from prompt_lsp.format import parse
from prompt_lsp.format.examples import parse_examples
from prompt_lsp.format.model import Position, PromptDocument, Range
from prompt_lsp.format.render import RenderError, render_messages
from prompt_lsp.format.template import _free_names, _lex, _parse_tokens, analyse_template


def doc_of(text: str) -> PromptDocument:
    return parse(textwrap.dedent(text).lstrip("\n"))


def at(doc: PromptDocument, rng: Range) -> str:
    """The text a one-line range covers."""
    assert rng.start.line == rng.end.line, rng
    return doc.lines[rng.start.line][rng.start.character : rng.end.character]


def names(doc: PromptDocument, kind: str) -> list[tuple[str, int, int]]:
    return [
        (u.name, u.range.start.line, u.range.start.character) for u in doc.names if u.kind == kind
    ]


NEWS = """
---
name: summarize-news
description: Three-sentence news summaries
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
tokens: ["<start>", "<end>"]
examples: news.examples.jsonl
metrics:
  - rougeL
  - {name: rouge1, threshold: 0.30}
---
system:
You are a careful news editor.
user:
Summarize the following article in {{ sentences }} sentences.
<start>{{ article }}<end>
"""


# ----------------------------------------------------------------------------- front matter


def test_front_matter_block_and_body_start() -> None:
    doc = doc_of(NEWS)
    assert doc.has_front_matter
    assert doc.front_matter_range == Range(Position(0, 0), Position(18, 3))
    assert doc.body_start_line == 19
    assert doc.lines[doc.body_start_line] == "system:"
    assert doc.problems == []
    assert doc.metadata["name"] == "summarize-news"
    assert doc.model_id == "openai/gpt-4o-mini"


def test_every_key_and_value_has_its_range() -> None:
    doc = doc_of(NEWS)
    model = doc.entry("model")
    assert model is not None
    assert at(doc, model.key_range) == "model"
    assert at(doc, model.value_range) == "openai/gpt-4o-mini"
    temperature = doc.entry("config", "temperature")
    assert temperature.key_range == Range.of(5, 2, end=13)
    assert temperature.value_range == Range.of(5, 15, end=16)
    assert temperature.value == 0
    # list items: no key range, the item's own range; flow mappings inside lists too
    first_metric = doc.entry("metrics", 0)
    assert first_metric.key_range is None
    assert at(doc, first_metric.value_range) == "rougeL"
    threshold = doc.entry("metrics", 1, "threshold")
    assert at(doc, threshold.key_range) == "threshold"
    assert at(doc, threshold.value_range) == "0.30"
    assert doc.entry("tokens", 1).value == "<end>"
    assert at(doc, doc.entry("tokens", 1).value_range) == '"<end>"'
    # a mapping value spans its block
    config = doc.entry("config")
    assert config.value_range.start == Position(5, 2)
    assert config.value_range.end.line >= 6


def test_picoschema_fields_names_types_descriptions_and_optional() -> None:
    doc = doc_of(NEWS)
    assert doc.has_schema
    article, sentences = doc.schema
    assert (article.name, article.type, article.description, article.optional) == (
        "article",
        "string",
        "the article to summarize",
        False,
    )
    assert at(doc, article.range) == "article"
    assert at(doc, article.type_range) == "string"
    assert (sentences.name, sentences.type, sentences.optional) == ("sentences", "integer", True)
    assert at(doc, sentences.range) == "sentences"  # without the `?`
    assert at(doc, sentences.type_range) == "integer"
    assert doc.defaults == {"sentences": 3}
    assert at(doc, doc.default_entries["sentences"].key_range) == "sentences"
    assert doc.declared_names == {"article", "sentences"}


def test_picoschema_other_forms() -> None:
    doc = doc_of(
        """
        ---
        input:
          schema:
            title(string, the headline): ""
            tags?(array): ""
            author:
              name: string
            mood: [happy, sad]
            anything:
            Weird-Name: string
        ---
        {{ title }}
        """
    )
    by_name = {f.name: f for f in doc.schema}
    assert by_name["title"].type == "string"
    assert by_name["title"].description == "the headline"
    assert by_name["tags"].optional and by_name["tags"].type == "array"
    assert by_name["author"].type == "object"
    assert by_name["mood"].type == "enum"
    assert by_name["anything"].type == "any"
    assert by_name["Weird-Name"].type == "invalid"


def test_json_schema_form_of_input_schema() -> None:
    doc = doc_of(
        """
        ---
        input:
          schema:
            type: object
            properties:
              question: {type: string, description: what to answer}
              limit: {type: integer}
            required: [question]
        ---
        {{ question }} {{ limit }}
        """
    )
    fields = {f.name: f for f in doc.schema}
    assert fields["question"].type == "string" and not fields["question"].optional
    assert fields["question"].description == "what to answer"
    assert fields["limit"].optional
    assert at(doc, fields["question"].range) == "question"


def test_no_front_matter() -> None:
    doc = parse("Hello {{ name }}\n")
    assert not doc.has_front_matter
    assert doc.front_matter_range is None
    assert doc.body_start_line == 0
    assert doc.metadata == {}
    assert names(doc, "variable") == [("name", 0, 9)]


def test_unclosed_front_matter_is_a_problem_not_an_exception() -> None:
    doc = parse("---\nname: x\nmodel: gpt-4o\n")
    assert doc.has_front_matter
    problem = doc.problems[0]
    assert problem.code == "yaml-syntax"
    assert "not closed" in problem.message
    assert problem.range == Range.of(0, 0, end=3)
    assert doc.metadata == {"name": "x", "model": "gpt-4o"}  # still read
    assert doc.messages == []


def test_invalid_yaml_reports_the_yaml_error_position() -> None:
    doc = doc_of(
        """
        ---
        name: ok
        config:
          temperature: 0.2
        description: "unterminated
        model: gpt-4o
        ---
        body
        """
    )
    (problem,) = doc.problems
    assert problem.code == "yaml-syntax"
    assert problem.message.startswith("Invalid YAML:")
    # PyYAML reports the unterminated string where it gave up; the position is mapped to the file
    assert problem.range.start.line >= 4
    assert problem.range.start.line <= 6
    doc = doc_of(
        """
        ---
        name: x
        model: : gpt-4o
        ---
        """
    )
    (problem,) = doc.problems
    assert problem.range.start == Position(2, 7)
    assert problem.message == "Invalid YAML: mapping values are not allowed here."


def test_tab_indentation_is_a_yaml_error_at_the_tab() -> None:
    doc = parse("---\nname: x\n\tmodel: y\n---\n")
    assert [p.code for p in doc.problems] == ["yaml-syntax"]
    assert doc.problems[0].range.start.line == 2


def test_front_matter_that_is_not_a_mapping() -> None:
    doc = parse("---\n- a\n- b\n---\nhi\n")
    (problem,) = doc.problems
    assert problem.code == "yaml-syntax"
    assert "mapping" in problem.message
    assert problem.range.start == Position(1, 0)


def test_recursive_and_exponential_yaml_aliases_are_refused_cheaply() -> None:
    """A billion-laughs alias tree is a 600-byte file standing for 10^9 values: rendering
    `{{ lol }}` or hashing the metadata would expand them all (issue 10)."""
    start = time.perf_counter()
    doc = parse("---\na: &a [*a]\n---\nhi\n")
    assert [(p.code, p.message) for p in doc.problems] == [
        ("yaml-syntax", "Invalid YAML: an alias refers to itself.")
    ]
    laughs = ["---", "a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        laughs.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    laughs += ["---", "hi"]
    doc = parse("\n".join(laughs))
    (problem,) = doc.problems
    assert problem.code == "yaml-syntax"
    assert problem.message == "Invalid YAML: its aliases expand to more than 100,000 values."
    assert problem.range.start.line == 6  # `f:`, the first list past the limit
    assert doc.metadata == {}
    assert time.perf_counter() - start < 1.0
    # aliases within the limit still work
    doc = parse("---\nbase: &b {temperature: 0}\nconfig: *b\n---\nhi\n")
    assert doc.problems == [] and doc.metadata["config"] == {"temperature": 0}


def test_duplicate_keys_point_at_the_value_in_effect() -> None:
    doc = parse("---\nmodel: gpt-4o\nmodel: gpt-4o-mini\n---\n")
    assert doc.model_id == "gpt-4o-mini"
    assert doc.entry("model").value_range.start.line == 2


def test_crlf_and_lone_cr_line_endings() -> None:
    doc = parse("---\r\nname: x\r\n---\r\nuser:\r\nHi {{ who }}\r\n")
    assert doc.lines[1] == "name: x"
    assert doc.body_start_line == 3
    assert names(doc, "variable") == [("who", 4, 6)]
    assert doc.messages[0].marker_range == Range.of(3, 0, end=5)
    doc = parse("a\rb {{ x }}")
    assert names(doc, "variable") == [("x", 1, 5)]


def test_a_byte_order_mark_before_the_front_matter() -> None:
    doc = parse("\ufeff---\nname: x\n---\n{{ a }}\n")
    assert doc.has_front_matter and doc.metadata == {"name": "x"}
    assert names(doc, "variable") == [("a", 3, 3)]


def test_yaml_only_line_breaks_do_not_shift_positions() -> None:
    # YAML breaks lines at U+2028, U+2029 and NEL too; the editor does not
    doc = parse("---\ndescription: a\u2028b\u2029c\x85d\nmodel: gpt-4o\n---\nhi\n")
    assert doc.problems == []
    assert doc.entry("model").value_range == Range.of(2, 7, end=13)
    doc = parse("---\ndescription: a\u2028b\nname: [x\n---\nhi\n")
    (problem,) = doc.problems
    assert problem.range.start == Position(2, 8)  # the end of `name: [x`, in the editor's count


def test_control_characters_in_yaml_are_a_yaml_error_at_the_character() -> None:
    doc = parse("---\nname: ok\nx: a\x08b\n---\nhi\n")
    (problem,) = doc.problems
    assert problem.code == "yaml-syntax"
    assert problem.range == Range.of(2, 4, end=5)
    assert "special characters" in problem.message
    result = parse_examples("- input: {a: 1}\n- input: {a: \x08}\n", "yaml")
    assert result.examples == [] and result.problems[0].line == 1


# ----------------------------------------------------------------------------- messages


def test_role_markers_and_message_bodies() -> None:
    doc = doc_of(NEWS)
    system, user = doc.messages
    assert system.role == "system"
    assert system.marker_range == Range.of(19, 0, end=7)
    assert system.body_range == Range(Position(20, 0), Position(20, 30))
    assert system.text == "You are a careful news editor."
    assert user.role == "user"
    assert user.marker_range == Range.of(21, 0, end=5)
    assert user.body_range.start == Position(22, 0)
    assert user.body_range.end == Position(doc.end_position().line, 0)  # the final empty line


def test_markers_are_case_insensitive_and_may_be_indented() -> None:
    doc = parse("  SYSTEM :\nrules\nAssistant:\nok")
    assert [m.role for m in doc.messages] == ["system", "assistant"]
    assert doc.messages[0].marker_range == Range.of(0, 2, end=10)


def test_text_before_the_first_marker_is_a_user_message() -> None:
    doc = parse("preamble {{ x }}\nsystem:\nrules")
    assert [(m.role, m.marker_range, m.text) for m in doc.messages] == [
        ("user", None, "preamble {{ x }}"),
        ("system", Range.of(1, 0, end=7), "rules"),
    ]
    assert [m.role for m in parse("just text").messages] == ["user"]


def test_a_line_with_text_after_the_colon_is_not_a_marker() -> None:
    doc = parse("user: hello\nsystem:x")
    assert [(m.role, m.marker_range) for m in doc.messages] == [("user", None)]


def test_marker_on_the_last_line_has_an_empty_body() -> None:
    doc = parse("user:\nhi\nassistant:")
    last = doc.messages[-1]
    assert last.role == "assistant" and last.text == ""
    assert last.body_range == Range.of(2, 10)


# ----------------------------------------------------------------------------- Jinja analysis


def test_variables_filters_tests_and_tags_with_ranges() -> None:
    doc = parse(
        "{{ user.name | upper }} {{ items[0] }}\n"
        "{% if count is divisibleby(3) and flag is not none %}{{ x|default('a')|trim }}{% endif %}"
    )
    assert names(doc, "variable") == [
        ("user", 0, 3),
        ("items", 0, 27),
        ("count", 1, 6),
        ("flag", 1, 34),
        ("x", 1, 56),
    ]
    assert names(doc, "filter") == [("upper", 0, 15), ("default", 1, 58), ("trim", 1, 71)]
    assert names(doc, "test") == [("divisibleby", 1, 15), ("none", 1, 46)]
    assert names(doc, "tag") == [("if", 1, 3), ("endif", 1, 81)]
    # ranges cover exactly the name
    for use in doc.names:
        assert at(doc, use.range) == use.name


def test_locally_bound_names_are_not_free_variables() -> None:
    doc = parse(
        "{% for x in xs %}{{ x }}{{ loop.index }}{% endfor %}\n"
        "{% set total = xs | length %}{{ total }}\n"
        "{% macro row(cell, width=3) %}{{ cell }}{{ width }}{{ caller() }}{% endmacro %}\n"
        "{% for k, v in pairs.items() %}{{ k }}={{ v }}{% endfor %}\n"
        "{% with n = 1 %}{{ n }}{% endwith %}\n"
        "{% set block_text %}{{ body }}{% endset %}{{ block_text }}\n"
        "{% set ns = namespace(count=0) %}{% set ns.count = ns.count + 1 %}{{ ns.count }}"
    )
    assert sorted({u.name for u in doc.variables}) == ["body", "pairs", "xs"]
    locals_ = {u.name for u in doc.names if u.kind == "local"}
    assert {"x", "loop", "total", "cell", "width", "k", "v", "n", "block_text", "ns"} <= locals_


def test_a_loop_variable_used_after_the_loop_is_free() -> None:
    doc = parse("{% for x in xs %}{{ x }}{% endfor %}{{ x }}")
    assert names(doc, "variable") == [("xs", 0, 12), ("x", 0, 39)]


def test_soft_keywords_are_variables_outside_their_statements() -> None:
    doc = parse(
        "{{ context }} {{ missing }} {{ required }} {{ recursive }}\n"
        "{% include 'x.txt' ignore missing with context %}"
    )
    assert names(doc, "variable") == [
        ("context", 0, 3),
        ("missing", 0, 17),
        ("required", 0, 31),
        ("recursive", 0, 46),
    ]


def test_filter_blocks_and_unknown_filters_do_not_break_the_analysis() -> None:
    doc = parse("{% filter uper %}{{ a }}{% endfilter %}{{ b | nosuch }}")
    assert doc.template_ok
    assert doc.problems == []  # unknown filters are a check, not a syntax error
    assert names(doc, "filter") == [("uper", 0, 10), ("nosuch", 0, 46)]
    assert [u.name for u in doc.variables] == ["a", "b"]


def test_blocks_for_folding() -> None:
    doc = parse("{% if a %}\n{% for x in a %}\n{{ x }}\n{% endfor %}\n{% endif %}")
    assert [(b.tag, b.range.start.line, b.range.end.line) for b in doc.blocks] == [
        ("for", 1, 3),
        ("if", 0, 4),
    ]


@pytest.mark.parametrize(
    ("body", "line", "col", "needle"),
    [
        ("line one\nhello {{ name \nmore\n", 1, 6, "`{{` is never closed"),
        ("ok\n{% for x in xs %}\n{{ x }}\n", 1, 0, "`{% for %}` is never closed"),
        ("ok\n\n  {% if %}\n", 2, 2, "Template syntax error"),
        ("a\nb {% frobnicate %}\n", 1, 2, "unknown tag 'frobnicate'"),
        ("{# comment\n", 0, 0, "`{#` is never closed"),
        ("x {{ a + }}", 0, 2, "Template syntax error"),
        ("{% endfor %}", 0, 0, "endfor"),
    ],
)
def test_template_syntax_errors_map_to_the_file_line(
    body: str, line: int, col: int, needle: str
) -> None:
    front = "---\nname: t\n---\n"
    doc = parse(front + body)
    assert not doc.template_ok
    (problem,) = [p for p in doc.problems if p.code == "template-syntax"]
    assert problem.range.start == Position(line + 3, col), problem
    assert needle in problem.message


def test_special_tokens_and_angle_tags_with_ranges() -> None:
    doc = parse(
        "---\ntokens: ['<doc>']\n---\n"
        "<start>{{ a }}<end> [INST] hi [/INST] <|im_start|>\n"
        "<article>x</article> [NOTE] {{ '<start>' }} <doc>"
    )
    found = [(t.text, t.range.start.line, t.range.start.character, t.known) for t in doc.tokens]
    assert found == [
        ("<start>", 3, 0, True),
        ("<end>", 3, 14, True),
        ("[INST]", 3, 20, True),
        ("[/INST]", 3, 30, True),
        ("<|im_start|>", 3, 38, True),
        ("<article>", 4, 0, False),
        ("</article>", 4, 10, False),
        ("<doc>", 4, 44, True),  # declared in `tokens:`; `[NOTE]` is prose, strings are not text
    ]
    for token in doc.tokens:
        assert at(doc, token.range) == token.text


# ----------------------------------------------------------------------------- never raises


@pytest.mark.parametrize(
    "text",
    [
        "",
        "---",
        "---\n---",
        "\x00\x01\xff---\n{{\x00}}",
        "---\n\x00: \x01\n---\n{% \x00 %}",
        "{{",
        "{%",
        "}}{{}}{%%}",
        "---\n[\n---\n",
        "\ufeff---\nname: x\n---\n",
        "\r\n\r\n---\r",
        "{% for %}{% endif %}{% raw %}",
        "{{ ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((( }}",
        "{{ " + "[" * 3000 + " }}",
        "---\n" + "- " * 2000 + "x\n---\n",
        "---\n" + "[" * 5000 + "\n---\n",
    ],
)
def test_parse_never_raises(text: str) -> None:
    doc = parse(text)
    assert isinstance(doc, PromptDocument)
    assert doc.lines
    for problem in doc.problems:
        assert problem.range.start.line < len(doc.lines)


def test_a_huge_body_is_truncated_not_analysed() -> None:
    doc = parse("---\nname: big\n---\n" + "{{ x }}\n" * 25_000)
    assert doc.truncated
    assert doc.metadata["name"] == "big"
    assert doc.names == []


# ----------------------------------------------------------------------------- compatibility


def test_dotprompt_config_names_are_aliases() -> None:
    doc = doc_of(
        """
        ---
        model: gemini/gemini-2.5-flash
        config:
          maxOutputTokens: 256
          topP: 0.8
          topK: 40
          stopSequences: ["\\n\\n"]
          temperature: 0.9
        ---
        hi
        """
    )
    assert doc.metadata["config"] == {
        "max_tokens": 256,
        "top_p": 0.8,
        "top_k": 40,
        "stop": ["\n\n"],
        "temperature": 0.9,
    }
    # the entries keep the names as written, for ranges
    assert doc.entry("config", "maxOutputTokens") is not None


def test_prompty_v1_inputs_model_and_sample() -> None:
    doc = doc_of(
        """
        ---
        name: support
        model:
          api: chat
          configuration:
            type: azure_openai
            azure_deployment: gpt-35-turbo
          parameters:
            max_tokens: 300
        inputs:
          firstName:
            type: string
            default: Jane
            description: the customer
          question:
            type: string
            sample: What now?
          lastName: Doe
        sample:
          firstName: Seth
          question: Which tent?
        ---
        {{ firstName }} {{ lastName }} {{ question }}
        """
    )
    assert doc.model_id == "azure/gpt-35-turbo"
    assert doc.metadata["config"] == {"max_tokens": 300}
    assert doc.has_schema
    fields = {f.name: f for f in doc.schema}
    assert fields["firstName"].optional and fields["firstName"].description == "the customer"
    assert not fields["question"].optional
    assert fields["lastName"].type == "any"
    assert doc.defaults == {"firstName": "Jane", "lastName": "Doe"}
    assert at(doc, fields["question"].range) == "question"
    assert doc.metadata["examples"] == [{"input": {"firstName": "Seth", "question": "Which tent?"}}]


def test_prompty_v2_inputs_as_a_list_and_as_a_mapping() -> None:
    listed = doc_of(
        """
        ---
        model:
          id: gpt-4o-mini
          options:
            temperature: 0.7
            maxOutputTokens: 100
        inputs:
          - name: firstName
            kind: string
            default: Jane
          - name: question
            kind: string
            required: true
          - name: history
            kind: thread
            required: false
        ---
        {{ firstName }} {{ question }}
        """
    )
    assert listed.model_id == "gpt-4o-mini"
    assert listed.metadata["config"] == {"temperature": 0.7, "max_tokens": 100}
    fields = {f.name: f for f in listed.schema}
    assert [f.name for f in listed.schema] == ["firstName", "question", "history"]
    assert fields["firstName"].optional and not fields["question"].optional
    assert fields["history"].type == "array" and fields["history"].raw_type == "thread"
    assert at(listed, fields["question"].range) == "question"  # the `name:` value
    assert listed.defaults == {"firstName": "Jane"}

    mapped = doc_of(
        """
        ---
        model: {id: claude-sonnet-4-5-20250929}
        inputs:
          question:
            kind: string
            default: Why?
        ---
        {{ question }}
        """
    )
    assert mapped.model_id == "claude-sonnet-4-5-20250929"
    assert [(f.name, f.type, f.optional) for f in mapped.schema] == [("question", "string", True)]


def test_prompty_file_references() -> None:
    doc = doc_of(
        """
        ---
        inputs: ${file:inputs.json}
        sample: ${file:sample.json}
        ---
        {{ anything }}
        """
    )
    assert not doc.has_schema  # an external schema is unknown: nothing is "undeclared"
    assert doc.metadata["examples"] == "sample.json"


# ----------------------------------------------------------------------------- examples


def test_jsonl_examples_with_lines_ids_and_problems() -> None:
    text = (
        '{"id": "a", "input": {"x": "one\u2028two"}, "expected": "1"}\n'
        "\n"
        '{"input": {"x": 2}}\n'
        "{bad json\n"
        '{"x": 3, "expected": ""}\n'
        "[1, 2]\n"
    )
    result = parse_examples(text, "jsonl")
    assert [(e.id, e.line, e.inputs, e.has_expected) for e in result.examples] == [
        ("a", 0, {"x": "one\u2028two"}, True),  # U+2028 inside a string is not a line break
        ("2", 2, {"x": 2}, False),
        ("3", 4, {"x": 3}, False),  # a record without `input` is its own inputs
    ]
    assert [(p.line, p.message.split(":")[0]) for p in result.problems] == [
        (3, "invalid JSON"),
        (5, 'an example must be an object like {"input"'),
    ]


def test_csv_examples_lines_count_blank_and_multiline_rows() -> None:
    text = 'topic,expected\nrain,wet\n\n\n"multi\nline",x\nsun,hot,extra\nsnow\n'
    result = parse_examples(text, "csv")
    assert [(e.line, e.inputs, e.expected) for e in result.examples] == [
        (1, {"topic": "rain"}, "wet"),
        (4, {"topic": "multi\nline"}, "x"),
    ]
    assert [(p.line, p.message) for p in result.problems] == [
        (6, "more fields than the header has columns"),
        (7, "fewer fields than the header has columns"),
    ]


def test_yaml_and_json_examples_keep_item_lines() -> None:
    yaml_text = "examples:\n  - input: {a: 1}\n    expected: x\n  - input:\n      a: 2\n"
    result = parse_examples(yaml_text, "yaml")
    assert [(e.line, e.inputs) for e in result.examples] == [(1, {"a": 1}), (3, {"a": 2})]
    json_text = '[\n  {"input": {"a": 1}},\n  {"input": {"a": 2}, "expected": "b"}\n]\n'
    result = parse_examples(json_text, "json")
    assert [(e.line, e.has_expected) for e in result.examples] == [(1, False), (2, True)]
    bad = parse_examples('[\n  {"input": 1,\n', "json")
    assert bad.examples == [] and bad.problems[0].message.startswith("invalid syntax")


def test_inline_examples_carry_their_prompt_lines() -> None:
    doc = doc_of(
        """
        ---
        examples:
          - input: {a: 1}
            expected: x
          - {input: {a: 2}}
        ---
        {{ a }}
        """
    )
    examples = load_examples(doc, None)
    assert examples.source is None
    assert [(e.line, e.inputs) for e in examples.examples] == [(2, {"a": 1}), (4, {"a": 2})]


def test_examples_file_is_parsed_once_per_mtime_and_size(tmp_path: Path) -> None:
    clear_cache()
    path = tmp_path / "cases.jsonl"
    path.write_text('{"input": {"a": 1}}\n')
    first = load_examples_file(path)
    assert load_examples_file(path) is first  # cached
    path.write_text('{"input": {"a": 1}}\n{"input": {"a": 22}}\n')  # size changes
    second = load_examples_file(path)
    assert second is not first and len(second.examples) == 2
    stat = path.stat()
    path.write_text('{"input": {"a": 1}}\n{"input": {"a": 33}}\n')  # same size, new mtime
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000))
    third = load_examples_file(path)
    assert third is not second and third.examples[1].inputs == {"a": 33}


def test_examples_file_missing_unreadable_or_not_utf8(tmp_path: Path) -> None:
    assert load_examples_file(tmp_path / "nope.jsonl").missing
    assert "not a file" in load_examples_file(tmp_path).error
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in load_examples_file(binary).error


def test_examples_path_resolves_against_the_prompt_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.csv").write_text("a,expected\n1,2\n")
    doc = parse("---\nexamples: sub/c.csv\n---\n{{ a }}")
    examples = load_examples(doc, tmp_path / "p.prompt")
    assert examples.source == tmp_path / "sub" / "c.csv"
    assert examples.examples[0].inputs == {"a": "1"}


# ----------------------------------------------------------------------------- rendering


def test_render_splits_messages_after_rendering() -> None:
    doc = doc_of(
        """
        ---
        input:
          default:
            n: 2
        ---
        system:
        Be brief.
        {% for shot in shots %}
        user:
        {{ shot.q }}
        assistant:
        {{ shot.a }}
        {% endfor %}
        user:
        {{ question }} ({{ n }})
        """
    )
    messages = render_messages(doc, {"shots": [{"q": "1+1", "a": "2"}], "question": "2+2"})
    assert [m.as_dict() for m in messages] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "1+1"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "2+2 (2)"},
    ]


def test_render_errors_are_render_errors() -> None:
    doc = parse("{{ missing_value }}")
    with pytest.raises(RenderError, match="missing_value"):
        render_messages(doc, {})
    with pytest.raises(RenderError):
        render_messages(parse("{{ x | nosuchfilter }}"), {"x": 1})
    with pytest.raises(RenderError):
        render_messages(parse("{{ x.__class__.__mro__ }}"), {"x": 1})  # sandboxed


# ----------------------------------------------------------------------------- free names


FREE_NAME_CASES = [
    "{{ a }}{% set a = 1 %}{{ a }}",
    "{% set a = 1 %}{{ a }}",
    "{% if c %}{% set x = 1 %}{% endif %}{{ x }}",
    "{% if c %}{% set x = 1 %}{% else %}{% set x = 2 %}{% endif %}{{ x }}",
    "{% for x in xs %}{{ x }}{{ loop.index }}{% else %}{{ y }}{% endfor %}{{ x }}",
    "{% for x in xs if x.ok recursive %}{{ loop(x.kids) }}{% endfor %}",
    "{% macro m(a, b=c) %}{{ a }}{{ b }}{{ d }}{{ caller() }}{{ varargs }}{% endmacro %}{{ m(1) }}",
    "{% call(u) m(1) %}{{ u }}{{ v }}{% endcall %}",
    "{% with a = b %}{{ a }}{{ c }}{% endwith %}{{ a }}",
    "{% filter upper %}{{ f }}{% endfilter %}",
    "{% set ns = namespace(n=0) %}{% for i in r %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
    "{% block b %}{{ inner }}{% endblock %}{{ self.b() }}",
    "{% set t %}{{ q }}{% endset %}{{ t }}",
    "{{ x if y else z }}{{ [p, q] if false else '' }}",
    "{{ range(n) | join(sep) }}{{ dict(a=w) }}{{ lipsum(2) }}",
    "{% from 'f' import g as h with context %}{{ h(k) }}",
    "{% raw %}{{ not_a_name }}{% endraw %}{{ real }}",
    "{{ a is defined and b is not none }}{{ c | default(d) }}",
    "{% for a, (b, c) in items %}{{ a }}{{ b }}{{ c }}{% endfor %}",
]


@pytest.mark.parametrize("source", FREE_NAME_CASES)
def test_free_names_match_jinja(source: str) -> None:
    """The trimmed tracker finds exactly the names Jinja's own introspection finds."""
    tokens, raw, error = _lex(source)
    assert error is None
    expected = meta.find_undeclared_variables(_parse_tokens(source, raw))
    assert _free_names(_parse_tokens(source, raw)) == expected
    variables = {u.name for u in analyse_template(source, 0).names if u.kind == "variable"}
    assert variables == expected


def _analysis(doc: PromptDocument) -> tuple:
    return (doc.names, doc.blocks, doc.tokens, doc.messages, doc.problems, doc.template_ok)


@pytest.mark.parametrize(
    "prompt",
    sorted(Path(__file__).resolve().parent.parent.glob("samples/*/*.prompt")),
    ids=lambda p: p.stem,
)
def test_a_prose_edit_reuses_the_analysis_and_matches_a_full_parse(prompt: Path) -> None:
    text = prompt.read_text()
    before = parse(text)
    lines = text.split("\n")
    prose = [
        n
        for n in range(before.body_start_line, len(lines))
        if lines[n].strip() and not any(c in lines[n] for c in "{}<>[]")
    ]
    assert prose, "the sample has prose lines to edit"
    for n in prose[:5]:
        for replacement in (lines[n] + " and more", "assistant:", lines[n] + " {{ new }}", ""):
            edited = "\n".join(lines[:n] + [replacement] + lines[n + 1 :])
            assert _analysis(parse(edited, previous=before)) == _analysis(parse(edited))


def test_a_prose_edit_skips_the_template_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    from prompt_lsp.format import parser

    text = "---\nname: x\n---\nuser:\nSome prose here.\n{{ topic }}\n"
    before = parse(text)
    calls = []
    real = parser.analyse_template_cached
    monkeypatch.setattr(parser, "analyse_template_cached", lambda *a: calls.append(a) or real(*a))
    after = parse(text.replace("Some prose", "Some more prose"), previous=before)
    assert calls == [] and [u.name for u in after.variables] == ["topic"]
    parse(text.replace("Some prose", "Some {{ x }} prose"), previous=before)
    assert len(calls) == 1


def _front(doc: PromptDocument) -> tuple:
    return (
        doc.has_front_matter,
        doc.front_matter_closed,
        doc.body_start_line,
        doc.entries,
        doc.schema,
        doc.defaults,
        doc.settings,
        doc.problems,
    )


@pytest.mark.parametrize(
    "edit",
    [
        lambda lines, n: lines[:n] + [lines[n] + " more"] + lines[n + 1 :],  # a body line
        lambda lines, n: lines[:2] + ["temperature: hot"] + lines[2:],  # into the front matter
        lambda lines, n: [lines[0]] + lines[2:],  # a front matter line removed
        lambda lines, n: lines[:n] + ["---", "name: x", "---"] + lines[n:],  # a fence in the body
        lambda lines, n: lines[1:],  # the opening fence removed
    ],
    ids=["body", "front-added", "front-removed", "fence-in-body", "no-front"],
)
def test_an_edit_reads_the_front_matter_as_a_full_parse_does(edit) -> None:
    """A body edit reuses the front matter's reading; any other edit reads it again."""
    text = Path(__file__).resolve().parent.parent / "samples/summarize-news/summarize-news.prompt"
    lines = text.read_text().split("\n")
    before = parse("\n".join(lines))
    edited = "\n".join(edit(lines, before.body_start_line + 1))
    assert _front(parse(edited, previous=before)) == _front(parse(edited))


DATA_EDIT_TEMPLATE = """---
input:
  schema:
    topic: string
    items(array): string
---
system:
Write about {{ topic }} for <|im_start|> readers {# a note #} today.
{% for item in items %}- {{ item | upper }} and {{ loop.index }} more{% endfor %}
user:
Plain line with [brackets] and <article> tags, then {{ topic }}.
{% if topic %}Yes {{ topic }}{% else %}No{% endif %} trailing words
"""

EDIT_TEXT = st.text(alphabet=st.sampled_from(list("ab {}%#<>|[]-.\n")), max_size=3)


@given(
    st.lists(
        st.tuples(st.integers(0, 12), st.integers(0, 80), st.integers(0, 3), EDIT_TEXT),
        min_size=1,
        max_size=6,
    )
)
@settings(max_examples=300, deadline=None)
def test_edits_beside_template_code_keep_an_analysis_equal_to_a_full_parse(edits) -> None:
    """Typing on a line that holds Jinja, one keystroke after another: each version parsed from
    the previous one reads exactly as a fresh parse of its text."""
    text = DATA_EDIT_TEMPLATE
    doc = parse(text)
    for line_offset, column, removed, inserted in edits:
        lines = text.split("\n")
        n = min(doc.body_start_line + line_offset, len(lines) - 1)
        column = min(column, len(lines[n]))
        lines[n] = lines[n][:column] + inserted + lines[n][column + removed :]
        text = "\n".join(lines)
        doc = parse(text, previous=doc)
        fresh = parse(text)
        assert _analysis(doc) == _analysis(fresh)
        assert doc.data_spans == fresh.data_spans


def test_typing_in_the_text_of_a_template_line_skips_the_analysis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prompt_lsp.format import parser

    before = parse(DATA_EDIT_TEMPLATE)
    calls = []
    real = parser.analyse_template_cached
    monkeypatch.setattr(parser, "analyse_template_cached", lambda *a: calls.append(a) or real(*a))
    edited = DATA_EDIT_TEMPLATE.replace("Write about", "Write a lot about")
    after = parse(edited, previous=before)
    assert calls == []
    topic = next(u for u in after.names if u.name == "topic")
    assert after.lines[topic.range.start.line][topic.range.start.character :].startswith("topic }}")
    parse(DATA_EDIT_TEMPLATE.replace("readers {#", "readers {%"), previous=before)
    assert len(calls) == 1  # a delimiter typed: analysed again
