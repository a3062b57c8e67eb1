"""The YAML front matter: values, the source range of every key and value, and the input schema.

Prompty's and Dotprompt's spellings are resolved here into the one shape the rest reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from prompt_lsp.format.keys import CONFIG_ALIASES
from prompt_lsp.format.model import Entry, Position, Problem, Range, SchemaField
from prompt_lsp.format.yaml_loader import BoundedLoader


@dataclass
class FrontMatter:
    metadata: dict[str, Any] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    schema: list[SchemaField] = field(default_factory=list)
    has_schema: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    default_entries: dict[str, Entry] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


_YAML_ONLY_BREAKS = {0x85: " ", 0x2028: " ", 0x2029: " "}


def parse_front_matter(text: str, first_line: int) -> FrontMatter:
    """Parse the YAML between the `---` lines; `first_line` is the file line of its first line."""
    result = FrontMatter()
    # YAML also breaks lines at NEL, LS and PS; the editor does not. One space each keeps every
    # YAML position on the editor's line and column.
    text = text.translate(_YAML_ONLY_BREAKS)
    root, data = _compose(text, first_line, result.problems)
    if root is None:
        return result
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        result.problems.append(
            Problem(
                "yaml-syntax",
                "Front matter must be a mapping of `key: value` lines.",
                _node_range(root, first_line),
            )
        )
        return result
    _walk(root, data, (), first_line, result.entries)
    result.metadata = _resolve_aliases(data)
    _read_inputs(result, text.split("\n"), first_line)
    return result


def _compose(text: str, first_line: int, problems: list[Problem]) -> tuple[yaml.Node | None, Any]:
    try:
        loader = BoundedLoader(text)  # checks the characters first: a ReaderError
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position)
        col = err.position - (text.rfind("\n", 0, err.position) + 1)
        problems.append(
            Problem(
                "yaml-syntax",
                f"Invalid YAML: {err.reason} (character {chr(err.character)!r}).",
                Range.of(first_line + line, col, end=col + 1),
            )
        )
        return None, None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        return node, loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line, mark.column) if mark else (0, 0)
        reason = err.problem or err.context or "invalid YAML"
        problems.append(
            Problem(
                "yaml-syntax",
                f"Invalid YAML: {reason}.",
                Range.of(first_line + line, col, end=col + 1),
            )
        )
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as err:
        problems.append(
            Problem("yaml-syntax", f"Invalid YAML: {err}", Range.of(first_line, 0, end=3))
        )
    finally:
        loader.dispose()
    return None, None


def _node_range(node: yaml.Node, first_line: int) -> Range:
    start, end = node.start_mark, node.end_mark
    return Range(
        Position(first_line + start.line, start.column), Position(first_line + end.line, end.column)
    )


def _walk(
    node: yaml.Node,
    value: Any,
    path: tuple,
    first_line: int,
    out: list[Entry],
    seen: set[int] | None = None,
) -> None:
    """Record an Entry for every key and list item. A node reached a second time (a YAML alias
    `*a`) is not walked again: that would loop on a recursive alias and blow up exponentially on
    nested ones ("billion laughs")."""
    if seen is None:
        seen = set()
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode) and isinstance(value, dict):
        last = {
            key_node.value: index
            for index, (key_node, _) in enumerate(node.value)
            if isinstance(key_node, yaml.ScalarNode)
        }
        for index, (key_node, value_node) in enumerate(node.value):
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str) or key not in value or last[key] != index:
                continue  # not a string key, or a duplicate the later one overrides
            child = value[key]
            out.append(
                Entry(
                    path + (key,),
                    _node_range(key_node, first_line),
                    _node_range(value_node, first_line),
                    child,
                )
            )
            _walk(value_node, child, path + (key,), first_line, out, seen)
    elif isinstance(node, yaml.SequenceNode) and isinstance(value, list):
        for index, (item_node, item) in enumerate(zip(node.value, value, strict=False)):
            out.append(Entry(path + (index,), None, _node_range(item_node, first_line), item))
            _walk(item_node, item, path + (index,), first_line, out, seen)


# ---------------------------------------------------------------- aliases


def _resolve_aliases(data: dict[str, Any]) -> dict[str, Any]:
    """Read Prompty's `model:` object and Dotprompt's config names into our own keys."""
    meta = dict(data)
    model = meta.get("model")
    if isinstance(model, dict):
        meta["model"], options = _prompty_model(model)
        if options and not isinstance(meta.get("config"), dict):
            meta["config"] = options
    config = meta.get("config")
    if isinstance(config, dict):
        meta["config"] = {CONFIG_ALIASES.get(k, k): v for k, v in config.items()}
    if "examples" not in meta and "sample" in meta:
        sample = meta["sample"]
        if isinstance(sample, str):
            sample = _prompty_file_ref(sample)
        meta["examples"] = [{"input": sample}] if isinstance(sample, dict) else sample
    return meta


def _prompty_file_ref(value: str) -> str:
    """Prompty's `${file:sample.json}` reference: the path inside it."""
    value = value.strip()
    if value.startswith("${file:") and value.endswith("}"):
        return value[len("${file:") : -1].strip()
    return value


# Prompty v1 `configuration.type` values -> litellm provider prefixes ("" = none needed).
_PROMPTY_PROVIDERS = {
    "openai": "",
    "azure_openai": "azure",
    "azure": "azure",
    "serverless": "azure_ai",
}


def _prompty_model(model: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Prompty v2 `model: {id, options}` or v1 `model: {api, configuration, parameters}`."""
    options = model.get("options") or model.get("parameters") or {}
    model_id = model.get("id")
    if not model_id:
        configuration = model.get("configuration") or model.get("connection") or {}
        if isinstance(configuration, dict):
            name = configuration.get("name") or configuration.get("azure_deployment")
            provider = configuration.get("type")
            if provider is None and configuration.get("azure_deployment"):
                provider = "azure"
            provider = _PROMPTY_PROVIDERS.get(str(provider), provider) if provider else ""
            if name:
                model_id = f"{provider}/{name}" if provider else name
    return (str(model_id) if model_id else None), (options if isinstance(options, dict) else {})


# ---------------------------------------------------------------- inputs

_PICO_KEY = re.compile(r"^(?P<name>[A-Za-z_][\w]*)(?P<optional>\?)?(?:\((?P<paren>[^)]*)\))?$")


def _read_inputs(result: FrontMatter, lines: list[str], first_line: int) -> None:
    """`input.schema` / `input.default`, or Prompty's `inputs:`. `lines` is the front matter's
    text (its first line is file line `first_line`), to find where each type is written."""
    meta = result.metadata
    entry_of = {e.path: e for e in result.entries}
    input_block = meta.get("input")
    if isinstance(input_block, dict):
        schema = input_block.get("schema")
        if "schema" in input_block:
            result.has_schema = True
        if isinstance(schema, dict):
            _read_picoschema(schema, ("input", "schema"), entry_of, result, (lines, first_line))
        defaults = input_block.get("default")
        if isinstance(defaults, dict):
            result.defaults = dict(defaults)
            for name in defaults:
                entry = entry_of.get(("input", "default", name))
                if entry:
                    result.default_entries[name] = entry
    elif isinstance(meta.get("inputs"), (dict, list)):  # not `inputs: ${file:inputs.json}`
        result.has_schema = True
        _read_prompty_inputs(meta["inputs"], entry_of, result)


def _read_picoschema(
    schema: dict, base: tuple, entry_of: dict, result: FrontMatter, source: tuple[list[str], int]
) -> None:
    if schema.get("type") == "object" and isinstance(schema.get("properties"), dict):
        required = set(schema.get("required") or [])
        for name, prop in schema["properties"].items():
            prop = prop if isinstance(prop, dict) else {}
            entry = entry_of.get(base + ("properties", name))
            result.schema.append(
                SchemaField(
                    name=str(name),
                    type=str(prop.get("type", "any")),
                    description=str(prop.get("description", "")),
                    optional=name not in required,
                    range=_name_range(entry, str(name)),
                    raw_type=str(prop.get("type", "")),
                )
            )
        return
    for key, value in schema.items():
        entry = entry_of.get(base + (key,))
        match = _PICO_KEY.match(str(key))
        if not match:
            result.schema.append(
                SchemaField(str(key), "invalid", "", False, _name_range(entry, str(key)))
            )
            continue
        type_name, description, type_range = _pico_type(match.group("paren"), value, entry, source)
        result.schema.append(
            SchemaField(
                name=match.group("name"),
                type=type_name.strip().lower(),
                description=description.strip(),
                optional=bool(match.group("optional")),
                range=_name_range(entry, match.group("name")),
                type_range=type_range,
                raw_type=type_name.strip(),
            )
        )


def _pico_type(
    paren: str | None, value: Any, entry: Entry | None, source: tuple[list[str], int]
) -> tuple[str, str, Range | None]:
    """Type and description of one Picoschema line, and where the type is written (None when
    it cannot be pinned down: a multi-line or escaped scalar)."""
    if paren is not None:  # `name(type, description): …`: the type is inside the key
        type_name, _, description = paren.partition(",")
        where = entry.key_range if entry else None
        return type_name, description, _locate(type_name, where, source, after="(")
    if isinstance(value, dict):
        return "object", "", None
    if isinstance(value, list):
        return "enum", "", None
    if value is None:
        return "any", "", None
    type_name, _, description = str(value).partition(",")
    return type_name, description, _locate(type_name, entry.value_range if entry else None, source)


def _locate(
    word: str, where: Range | None, source: tuple[list[str], int], after: str = ""
) -> Range | None:
    """The range of `word` (stripped) as written inside the one-line range `where`: after the
    first `after` in it, past an opening quote. None when the text there is not `word`."""
    word = word.strip()
    lines, first_line = source
    if where is None or not word or where.start.line != where.end.line:
        return None
    index = where.start.line - first_line
    if not 0 <= index < len(lines):
        return None
    text = lines[index]
    column = where.start.character
    if after:
        found = text.find(after, column, where.end.character)
        if found < 0:
            return None
        column = found + len(after)
    elif text[column : column + 1] in ("'", '"'):
        column += 1
    while column < len(text) and text[column] in " \t":
        column += 1
    if text[column : column + len(word)] != word:
        return None
    return Range(Position(where.start.line, column), Position(where.start.line, column + len(word)))


def _read_prompty_inputs(inputs: Any, entry_of: dict, result: FrontMatter) -> None:
    """Prompty v1 (`name: {type, default, description, sample}`) and v2 (a list, or a mapping,
    of properties with `name`, `kind`, `default`, `description`, `required`)."""
    items: list[tuple[str, Any, tuple]] = []
    if isinstance(inputs, dict):
        items = [(str(k), v, ("inputs", k)) for k, v in inputs.items()]
    elif isinstance(inputs, list):
        for index, item in enumerate(inputs):
            if isinstance(item, dict) and item.get("name"):
                items.append((str(item["name"]), item, ("inputs", index, "name")))
    for name, spec, path in items:
        entry = entry_of.get(path)
        spec_dict = spec if isinstance(spec, dict) else {}
        if not isinstance(spec, dict):
            result.defaults[name] = spec
        elif "default" in spec_dict:
            result.defaults[name] = spec_dict["default"]
        rng = entry.value_range if path[-1] == "name" and entry else _name_range(entry, name)
        kind = str(spec_dict.get("type") or spec_dict.get("kind") or "any").lower()
        result.schema.append(
            SchemaField(
                name=name,
                type=_PROMPTY_KINDS.get(kind, kind),
                description=str(spec_dict.get("description", "")),
                optional=not spec_dict.get("required", True) or "default" in spec_dict,
                range=rng,
                raw_type=str(spec_dict.get("type") or spec_dict.get("kind") or ""),
            )
        )


# Prompty kinds and types that are spelt differently from Picoschema's.
_PROMPTY_KINDS = {
    "float": "number",
    "int": "integer",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
    "thread": "array",  # a list of chat messages
}


def _name_range(entry: Entry | None, name: str) -> Range:
    if entry is None or entry.key_range is None:
        return Range.of(0, 0)
    start = entry.key_range.start
    return Range(start, Position(start.line, start.character + len(name)))
