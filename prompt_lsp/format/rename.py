"""Where an input variable is written, and the edits that rename it: its uses in the
template, its schema declaration, its `input.default` key, the keys of inline examples and the
keys (or CSV header cell) of an examples file in any of its formats. Pure: the language
server's definition, references, highlight and rename are built on it."""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from prompt_lsp.format.examples import RESERVED_COLUMNS
from prompt_lsp.format.model import Position, PromptDocument, Range
from prompt_lsp.format.template import KEYWORDS
from prompt_lsp.format.text import OffsetMap, split_lines
from prompt_lsp.format.yaml_loader import BoundedLoader

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Names Jinja gives a meaning of its own: a variable cannot be renamed to one of these.
RESERVED_NAMES = KEYWORDS | {"loop", "self", "caller", "varargs", "kwargs", "namespace", "range"}
INPUT_KEYS = ("input", "inputs")


# ---------------------------------------------------------------- what is under the cursor


@dataclass(frozen=True)
class Target:
    """An input variable under the cursor: its name and the range of the word clicked."""

    name: str
    range: Range
    declaration: bool  # the cursor is on the schema or `input.default` key, not a template use


def variable_at(doc: PromptDocument, pos: Position) -> Target | None:
    """The input variable at `pos`: a template use, a schema declaration or a default's key."""
    for use in doc.names:
        if use.kind == "variable" and use.range.contains(pos):
            return Target(use.name, use.range, False)
    for schema_field in doc.schema:
        rng = declaration_range(doc, schema_field.range, schema_field.name)
        if rng is not None and rng.contains(pos):
            return Target(schema_field.name, rng, True)
    for name, entry in doc.default_entries.items():
        rng = declaration_range(doc, entry.key_range, name)
        if rng is not None and rng.contains(pos):
            return Target(name, rng, True)
    return None


def declaration_range(doc: PromptDocument, rng: Range | None, name: str) -> Range | None:
    """Where `name` is written at (or just after) the start of `rng`: the name alone, without
    quotes around the key or the `?` and `(type)` that follow it in Picoschema."""
    if rng is None or not 0 <= rng.start.line < len(doc.lines):
        return None
    line = doc.lines[rng.start.line]
    start = rng.start.character
    limit = rng.end.character if rng.end.line == rng.start.line else len(line)
    for match in re.finditer(rf"(?<![\w]){re.escape(name)}(?![\w])", line):
        if start <= match.start() <= max(start + 2, limit):  # 2: an opening quote or so
            return Range.of(rng.start.line, match.start(), end=match.end())
        if match.start() > limit:
            break
    return None


def declarations(doc: PromptDocument, name: str) -> list[Range]:
    """The schema declaration and the `input.default` key of `name`, where present."""
    found: list[Range] = []
    schema_field = doc.schema_field(name)
    if schema_field is not None:
        rng = declaration_range(doc, schema_field.range, name)
        if rng is not None:
            found.append(rng)
    entry = doc.default_entries.get(name)
    if entry is not None:
        rng = declaration_range(doc, entry.key_range, name)
        if rng is not None:
            found.append(rng)
    return found


def uses(doc: PromptDocument, name: str) -> list[Range]:
    return [u.range for u in doc.names if u.kind == "variable" and u.name == name]


def inline_example_keys(doc: PromptDocument, name: str) -> list[Range]:
    """The keys naming `name` in inline examples (`examples:` list, or Prompty's `sample:`)."""
    found: list[Range] = []
    for entry in doc.entries:
        path = entry.path
        if not path or path[-1] != name or entry.key_range is None:
            continue
        inline = path[0] == "examples" and isinstance(doc.settings.examples, list)
        if inline and len(path) == 4 and isinstance(path[1], int) and path[2] in INPUT_KEYS:
            pass
        elif inline and len(path) == 3 and isinstance(path[1], int):
            record = doc.entry("examples", path[1])
            value = record.value if record is not None else None
            if not isinstance(value, dict) or any(value.get(k) is not None for k in INPUT_KEYS):
                continue
            if name in RESERVED_COLUMNS:
                continue
        elif path == ("sample", name) and "examples" not in {e.path[0] for e in doc.entries}:
            pass
        else:
            continue
        rng = declaration_range(doc, entry.key_range, name)
        if rng is not None:
            found.append(rng)
    return found


def examples_value_at(doc: PromptDocument, pos: Position) -> bool:
    """`pos` is on the `examples:` key or its value, and that value names a file."""
    entry = doc.entry("examples")
    if entry is None or not isinstance(entry.value, str):
        return False
    return entry.value_range.contains(pos) or (
        entry.key_range is not None and entry.key_range.contains(pos)
    )


# ---------------------------------------------------------------- examples files


# A JSON string (its closing quote may be missing) or one structural character: what
# `json_key_spans` needs to see, found by the regex engine rather than a loop per character.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[{}\[\],:]', re.DOTALL)


def json_key_spans(text: str) -> Iterator[tuple[tuple[Any, ...], str, int, int]]:
    """Every object key in the JSON `text`: (path of the object holding it, the key, start and
    end offsets of the key token with its quotes). Tolerates invalid JSON (best effort)."""
    # A frame: [is_object, path, current key or index, expecting a key]
    stack: list[list[Any]] = []
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        char = token[0]
        if char == '"':
            if stack and stack[-1][0] and stack[-1][3]:
                key = _json_key(token)
                stack[-1][2] = key
                yield stack[-1][1], key, match.start(), match.end()
        elif char in "{[":
            if stack:
                parent = stack[-1]
                path = parent[1] + (parent[2],)
            else:
                path = ()
            stack.append([char == "{", path, None if char == "{" else 0, char == "{"])
        elif char in "}]":
            if stack:
                stack.pop()
        elif char == ",":
            if stack:
                frame = stack[-1]
                if frame[0]:
                    frame[3] = True
                else:
                    frame[2] += 1
        elif stack:  # ":"
            stack[-1][3] = False


def _json_key(token: str) -> str:
    if "\\" not in token and len(token) > 1 and token.endswith('"'):
        return token[1:-1]
    try:
        return str(json.loads(token))
    except ValueError:
        return token.strip('"')


def _input_container(record: Any) -> tuple[str, ...] | None:
    """Where a record's input keys are, as `format.examples` reads it: under `input`/`inputs`,
    or at the top level (`()`); None when the record has no input object."""
    if not isinstance(record, dict):
        return None
    for key in INPUT_KEYS:
        if key in record:
            value = record[key]
            if value is None:
                return ()
            return (key,) if isinstance(value, dict) else None
    return ()


def _top_level_ok(container: tuple[str, ...], key: str) -> bool:
    return bool(container) or key not in RESERVED_COLUMNS


@functools.lru_cache(maxsize=8)
def examples_key_edits(text: str, kind: str, old: str, new: str) -> tuple[tuple[Range, str], ...]:
    """Edits renaming the input key `old` to `new` in an examples file's text of `kind`
    ("jsonl", "json", "yaml", "csv"). Ranges are in code points on `split_lines(text)`.
    Remembered: references and rename ask again after every keystroke in the prompt, and a
    5,000-line file takes a third of a second."""
    lines = split_lines(text)
    if kind == "csv":
        return tuple(_csv_edits(lines, old, new))
    if kind == "yaml":
        return tuple(_yaml_edits(lines, old, new))
    if kind == "json":
        return tuple(_json_edits(lines, old, new))
    return tuple(_jsonl_edits(lines, old, new))


def _jsonl_edits(lines: list[str], old: str, new: str) -> list[tuple[Range, str]]:
    edits: list[tuple[Range, str]] = []
    quoted = json.dumps(new)
    for number, line in enumerate(lines):
        if old not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        container = _input_container(record)
        if container is None or not _top_level_ok(container, old):
            continue
        for path, key, start, end in json_key_spans(line):
            if path == container and key == old:
                edits.append((Range.of(number, start, end=end), quoted))
    return edits


def _json_edits(lines: list[str], old: str, new: str) -> list[tuple[Range, str]]:
    text = "\n".join(lines)
    try:
        data = json.loads(text)
    except ValueError:
        return _yaml_edits(lines, old, new)  # read as YAML by `format.examples` too
    prefix: tuple[Any, ...] = ()
    if isinstance(data, dict) and isinstance(data.get("examples"), list):
        prefix, data = ("examples",), data["examples"]
    if not isinstance(data, list):
        return []
    wanted = set()
    for index, record in enumerate(data):
        container = _input_container(record)
        if container is not None and _top_level_ok(container, old):
            wanted.add(prefix + (index,) + container)
    offsets = OffsetMap(text)
    quoted = json.dumps(new)
    return [
        (Range(offsets.position(start), offsets.position(end)), quoted)
        for path, key, start, end in json_key_spans(text)
        if key == old and path in wanted
    ]


def _yaml_edits(lines: list[str], old: str, new: str) -> list[tuple[Range, str]]:
    loader = BoundedLoader("\n".join(lines))
    try:
        root = loader.get_single_node()
    except yaml.YAMLError:
        return []
    finally:
        loader.dispose()
    if isinstance(root, yaml.MappingNode):
        root = next(
            (v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "examples"),
            None,
        )
    if not isinstance(root, yaml.SequenceNode):
        return []
    edits: list[tuple[Range, str]] = []
    for item in root.value:
        if not isinstance(item, yaml.MappingNode):
            continue
        keys = {k.value: v for k, v in item.value if isinstance(k, yaml.ScalarNode)}
        mapping: yaml.Node = item
        for input_key in INPUT_KEYS:
            if input_key in keys:
                value = keys[input_key]
                if isinstance(value, yaml.MappingNode):
                    mapping = value
                elif not (isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null")):
                    mapping = None  # type: ignore[assignment]
                break
        if mapping is None or (mapping is item and old in RESERVED_COLUMNS):
            continue
        for key_node, _ in mapping.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == old:
                start, end = key_node.start_mark, key_node.end_mark
                if start.line != end.line:
                    continue
                quote = {"'": "'", '"': '"'}.get(key_node.style or "", "")
                edits.append(
                    (Range.of(start.line, start.column, end=end.column), f"{quote}{new}{quote}")
                )
    return edits


def _csv_edits(lines: list[str], old: str, new: str) -> list[tuple[Range, str]]:
    if not lines or old in RESERVED_COLUMNS:
        return []
    return [
        (Range.of(0, start, end=end), new)
        for value, start, end in csv_header_cells(lines[0])
        if value == old
    ]


def csv_header_cells(line: str) -> list[tuple[str, int, int]]:
    """The cells of a CSV header line with their spans (quotes included)."""
    cells: list[tuple[str, int, int]] = []
    i, n = 0, len(line)
    while i <= n:
        start = i
        if i < n and line[i] == '"':
            j = i + 1
            while j < n:
                if line[j] == '"':
                    if j + 1 < n and line[j + 1] == '"':
                        j += 2
                        continue
                    break
                j += 1
            end = min(j + 1, n)
            comma = line.find(",", end)
            comma = n if comma < 0 else comma
            value = next(csv.reader(io.StringIO(line[start:comma])), [""])[0]
        else:
            comma = line.find(",", i)
            comma = n if comma < 0 else comma
            end = comma
            value = line[start:end]
        cells.append((value, start, end))
        i = comma + 1
    return cells


# ---------------------------------------------------------------- rename


def rename_problem(doc: PromptDocument, old: str, new: str) -> str | None:
    """Why `new` cannot replace the variable `old` (shown to the user), or None."""
    if not IDENTIFIER.match(new):
        return (
            f"`{new}` is not a valid variable name: use letters, digits and `_`, "
            "not starting with a digit."
        )
    if new in RESERVED_NAMES:
        return f"`{new}` is a Jinja keyword and cannot name a variable."
    if new != old and (
        new in doc.declared_names or any(u.name == new for u in doc.names if u.kind != "tag")
    ):
        return f"`{new}` is already a name in this prompt: renaming `{old}` to it would merge them."
    return None


def prompt_edits(doc: PromptDocument, old: str) -> list[Range]:
    """Every range in the prompt that spells the variable `old`, sorted, without duplicates."""
    ranges = uses(doc, old) + declarations(doc, old) + inline_example_keys(doc, old)
    return sorted(set(ranges), key=lambda r: (r.start, r.end))
