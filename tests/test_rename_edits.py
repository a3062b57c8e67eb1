"""Renaming an input variable inside examples files (pure `format.rename`): after the edits,
every example reads the new key with the old value, and nothing else in the file changed."""

from __future__ import annotations

import pytest

from prompt_lsp.format import parse
from prompt_lsp.format.examples import parse_examples
from prompt_lsp.format.model import Range
from prompt_lsp.format.rename import csv_header_cells, examples_key_edits, rename_problem
from prompt_lsp.format.text import split_lines

FILES = {
    "jsonl": (
        '{"id": "a", "input": {"topic": "cats", "note": {"topic": "kept"}}, "expected": "x"}\n'
        '{"id": "b", "topic": "dogs", "expected": {"topic": "kept"}}\n'
        '{"id": "c", "inputs": {"topic": "h\\u00e9ron ü"}}\n'
    ),
    "json": (
        '{"examples": [\n'
        '  {"id": "a", "input": {"topic": "cats", "note": {"topic": "kept"}}, "expected": "x"},\n'
        '  {"id": "b", "topic": "dogs", "expected": {"topic": "kept"}},\n'
        '  {"id": "c", "inputs": {"topic": "héron ü"}}\n'
        "]}\n"
    ),
    "yaml": (
        "- id: a\n"
        "  input:\n"
        "    topic: cats\n"
        "    note: {topic: kept}\n"
        "  expected: x\n"
        "- id: b\n"
        "  'topic': dogs\n"
        "  expected: {topic: kept}\n"
        "- id: c\n"
        '  inputs: {"topic": héron ü}\n'
    ),
    "csv": 'id,"topic",note\na,cats,"topic, kept"\nb,dogs,\nc,héron ü,\n',
}


def apply(text: str, edits: list[tuple[Range, str]]) -> str:
    lines = split_lines(text)
    for rng, new in sorted(edits, key=lambda e: (e[0].start, e[0].end), reverse=True):
        assert rng.start.line == rng.end.line  # keys are renamed on their own line
        line = lines[rng.start.line]
        lines[rng.start.line] = line[: rng.start.character] + new + line[rng.end.character :]
    return "\n".join(lines)


@pytest.mark.parametrize("kind", FILES)
def test_every_example_reads_the_new_key_with_its_value(kind: str) -> None:
    text = FILES[kind]
    before = parse_examples(text, kind).examples
    renamed = apply(text, examples_key_edits(text, kind, "topic", "subject"))
    after = parse_examples(renamed, kind).examples
    assert [e.id for e in after] == [e.id for e in before] == ["a", "b", "c"]
    for old, new in zip(before, after, strict=True):
        assert "topic" not in new.inputs
        assert new.inputs["subject"] == old.inputs["topic"]
        others = {k: v for k, v in old.inputs.items() if k != "topic"}
        assert {k: v for k, v in new.inputs.items() if k != "subject"} == others
        assert new.expected == old.expected  # a same-named key elsewhere is not an input


@pytest.mark.parametrize("kind", FILES)
def test_a_reserved_column_is_never_renamed_at_the_top_level(kind: str) -> None:
    text = FILES[kind]
    renamed = apply(text, examples_key_edits(text, kind, "expected", "wanted"))
    assert [e.expected for e in parse_examples(renamed, kind).examples] == [
        e.expected for e in parse_examples(text, kind).examples
    ]


def test_csv_header_cells_keep_their_quotes_and_commas() -> None:
    line = 'id,"a, b","say ""hi""",,last'
    cells = csv_header_cells(line)
    assert [value for value, _, _ in cells] == ["id", "a, b", 'say "hi"', "", "last"]
    assert [line[start:end] for _, start, end in cells] == [
        "id", '"a, b"', '"say ""hi"""', "", "last",
    ]  # fmt: skip


def test_broken_files_give_no_edits_rather_than_wrong_ones() -> None:
    assert not examples_key_edits("- {topic: [unclosed\n", "yaml", "topic", "subject")
    broken_line = '{"topic": "a"\n{"topic": "b"}\n'
    edits = examples_key_edits(broken_line, "jsonl", "topic", "subject")
    assert [rng.start.line for rng, _ in edits] == [1]


@pytest.mark.parametrize(
    ("new", "why"),
    [
        ("2fast", "not a valid variable name"),
        ("for", "Jinja keyword"),
        ("other", "already a name in this prompt"),
    ],
)
def test_a_new_name_that_cannot_work_says_why(new: str, why: str) -> None:
    doc = parse(
        "---\ninput:\n  schema:\n    topic: string\n    other: string\n---\n{{ topic }} {{ other }}\n"
    )
    assert why in (rename_problem(doc, "topic", new) or "")
    assert rename_problem(doc, "topic", "subject") is None
