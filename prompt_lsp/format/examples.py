"""Examples attached to a prompt: JSONL, JSON, CSV, YAML files or an inline list. Pure: reading
the files (and caching them) is `evaluation.examples`'s job."""

from __future__ import annotations

import csv
import functools
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prompt_lsp.format.model import PromptDocument
from prompt_lsp.format.text import split_lines
from prompt_lsp.format.yaml_loader import MAX_DEPTH, BoundedLoader

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".yaml": "yaml",
    ".yml": "yaml",
}
RESERVED_COLUMNS = ("id", "expected")


@dataclass(frozen=True)
class Example:
    index: int  # 0-based position
    id: str  # the example's `id`, else its 1-based number
    inputs: dict[str, Any]
    expected: Any
    has_expected: bool
    line: int  # 0-based line in its source (the examples file, or the prompt when inline)


@dataclass(frozen=True)
class ExampleProblem:
    line: int  # 0-based line in the examples file
    message: str


@dataclass
class ExampleSet:
    source: Path | None  # the examples file; None when inline
    examples: list[Example] = field(default_factory=list)
    problems: list[ExampleProblem] = field(default_factory=list)
    error: str | None = None  # the file could not be read at all
    missing: bool = False  # the file does not exist

    # The properties below are computed once: a set read from a file is cached and shared by
    # every check of the prompt, and is not changed after parsing.

    @property
    def variable_names(self) -> set[str]:
        return set(self._variable_names)

    @functools.cached_property
    def _variable_names(self) -> frozenset[str]:
        return frozenset(name for example in self.examples for name in example.inputs)

    @functools.cached_property
    def by_input_names(self) -> dict[frozenset[str], list[Example]]:
        """The examples grouped by the set of input names they give (usually one or two)."""
        groups: dict[frozenset[str], list[Example]] = {}
        for example in self.examples:
            groups.setdefault(frozenset(example.inputs), []).append(example)
        return groups

    @functools.cached_property
    def largest(self) -> Example | None:
        """The example with the most input text."""
        if not self.examples:
            return None
        return max(self.examples, key=lambda e: sum(len(str(v)) for v in e.inputs.values()))


def examples_path(doc: PromptDocument, prompt_path: Path | None) -> Path | None:
    """The examples file named by `examples:`, resolved against the prompt's folder."""
    value = doc.metadata.get("examples")
    if not isinstance(value, str) or not value.strip():
        return None
    path = Path(value.strip()).expanduser()
    if not path.is_absolute() and prompt_path is not None:
        path = prompt_path.parent / path
    return path


def inline_examples(doc: PromptDocument) -> ExampleSet | None:
    """The examples written in the front matter (`examples:` as a list), else None."""
    value = doc.metadata.get("examples")
    if not isinstance(value, list):
        return None
    lines = [
        e.value_range.start.line
        for e in doc.entries
        if len(e.path) == 2 and e.path[0] == "examples"
    ]
    return _from_records(value, lines, None)


def parse_examples_file(text: str, path: Path) -> ExampleSet:
    """Parse the text of the examples file at `path` (its suffix gives the format)."""
    result = parse_examples(text, FORMATS.get(path.suffix.lower(), "jsonl"))
    result.source = path
    return result


def parse_examples(text: str, kind: str) -> ExampleSet:
    """Parse examples text of `kind` ("jsonl", "json", "csv", "yaml")."""
    if kind == "csv":
        return _parse_csv(text)
    if kind in ("json", "yaml"):
        return _parse_structured(text)
    return _parse_jsonl(text)


def _parse_jsonl(text: str) -> ExampleSet:
    records: list[Any] = []
    lines: list[int] = []
    problems: list[ExampleProblem] = []
    # Lines end at \n, \r\n or \r only, as in the editor: `str.splitlines` would also split at
    # U+2028 and other separators that JSON strings may hold raw.
    for number, line in enumerate(split_lines(text)):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(ExampleProblem(number, f"invalid JSON: {err.msg} (column {err.colno})"))
            continue
        except RecursionError:
            record = None  # deeper than Python's recursion limit: reported below
        if record is None or _nested_deeper(record, MAX_DEPTH):
            problems.append(ExampleProblem(number, f"nested deeper than {MAX_DEPTH} levels"))
            continue
        records.append(record)
        lines.append(number)
    result = _from_records(records, lines, None)
    result.problems[:0] = problems
    return result


def _nested_deeper(value: Any, limit: int) -> bool:
    """Whether lists and objects in `value` nest deeper than `limit` (without recursing)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _parse_structured(text: str) -> ExampleSet:
    """JSON or YAML: composed with YAML (a superset of JSON) to keep each item's line."""
    try:
        loader = BoundedLoader(text)  # checks the characters first: a ReaderError
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position)
        return ExampleSet(None, problems=[ExampleProblem(line, f"invalid syntax: {err.reason}")])
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else []
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        return ExampleSet(
            None,
            problems=[ExampleProblem(mark.line if mark else 0, f"invalid syntax: {err.problem}")],
        )
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as err:
        return ExampleSet(None, problems=[ExampleProblem(0, f"invalid syntax: {err}")])
    finally:
        loader.dispose()
    if isinstance(data, dict) and isinstance(data.get("examples"), list):
        node = next(v for k, v in node.value if k.value == "examples")
        data = data["examples"]
    if not isinstance(data, list):
        return ExampleSet(None, problems=[ExampleProblem(0, "expected a list of examples")])
    lines = (
        [item.start_mark.line for item in node.value] if isinstance(node, yaml.SequenceNode) else []
    )
    return _from_records(data, lines, None)


def _parse_csv(text: str) -> ExampleSet:
    # csv.reader rather than DictReader: DictReader skips blank rows internally, so the line a
    # row starts on could not be known.
    reader = csv.reader(io.StringIO(text))
    records: list[Any] = []
    lines: list[int] = []
    problems: list[ExampleProblem] = []
    header: list[str] | None = None
    try:
        while True:
            start = reader.line_num  # 0-based line where the next row begins
            row = next(reader, None)
            if row is None:
                break
            if not row:
                continue  # a blank line
            if header is None:
                header = row
            elif len(row) > len(header):
                problems.append(ExampleProblem(start, "more fields than the header has columns"))
            elif len(row) < len(header):
                problems.append(ExampleProblem(start, "fewer fields than the header has columns"))
            else:
                records.append(_csv_record(dict(zip(header, row, strict=True))))
                lines.append(start)
    except csv.Error as err:
        problems.append(ExampleProblem(reader.line_num, f"invalid CSV: {err}"))
    result = _from_records(records, lines, None)
    result.problems[:0] = problems
    return result


def _csv_record(row: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {"input": {k: v for k, v in row.items() if k not in RESERVED_COLUMNS}}
    for column in RESERVED_COLUMNS:
        if column in row:
            record[column] = row[column]
    return record


def _from_records(records: list[Any], lines: list[int], source: Path | None) -> ExampleSet:
    result = ExampleSet(source)
    for index, record in enumerate(records):
        line = lines[index] if index < len(lines) else 0
        if not isinstance(record, dict):
            result.problems.append(
                ExampleProblem(
                    line, 'an example must be an object like {"input": {...}, "expected": ...}'
                )
            )
            continue
        inputs = record.get("input", record.get("inputs"))
        if inputs is None:
            inputs = {k: v for k, v in record.items() if k not in RESERVED_COLUMNS}
        if not isinstance(inputs, dict):
            result.problems.append(
                ExampleProblem(line, "`input` must be an object of variable values")
            )
            continue
        number = len(result.examples)
        example_id = record.get("id")
        result.examples.append(
            Example(
                index=number,
                id=str(example_id) if example_id not in (None, "") else str(number + 1),
                inputs={str(k): v for k, v in inputs.items()},
                expected=record.get("expected"),
                has_expected="expected" in record and record["expected"] not in (None, ""),
                line=line,
            )
        )
    return result


__all__ = [
    "Example",
    "ExampleProblem",
    "ExampleSet",
    "examples_path",
    "inline_examples",
    "parse_examples",
    "parse_examples_file",
]
