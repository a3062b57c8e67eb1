"""Checks of the front matter: keys, value types, the model and the metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prompt_lsp.catalog.metrics import METRICS, suggest_metric
from prompt_lsp.catalog.models import is_known_model, near_miss, suggest_models
from prompt_lsp.checks.findings import Finding, Fix, Severity, TextEdit
from prompt_lsp.format.keys import SCHEMA_TYPES, SECTIONS
from prompt_lsp.format.model import Entry, PromptDocument, Range
from prompt_lsp.format.spelling import close_matches


def did_you_mean(word: str, candidates: list[str] | tuple[str, ...]) -> list[str]:
    """Candidates a few typing slips from `word` (never merely similar ones)."""
    return close_matches(word, candidates, n=3)


def suggestion_hint(suggestions: list[str]) -> str:
    """` Did you mean 'x'?` for the best suggestion, or nothing."""
    return f" Did you mean '{suggestions[0]}'?" if suggestions else ""


def replace_fixes(rng: Range, suggestions: list[str], what: str) -> tuple[Fix, ...]:
    return tuple(
        Fix(f"Change {what} to '{s}'", (TextEdit(rng, s),), preferred=i == 0)
        for i, s in enumerate(suggestions)
    )


def check_keys(doc: PromptDocument) -> Iterator[Finding]:
    for entry in doc.entries:
        parent, key = entry.path[:-1], entry.path[-1]
        known = SECTIONS.get(parent)  # type: ignore[arg-type]
        if known is None or not isinstance(key, str) or key in known or entry.key_range is None:
            continue
        suggestions = did_you_mean(key, list(known))
        if parent == ("config",) and not suggestions:
            continue  # other provider parameters pass through to the model call
        where = "front matter" if not parent else f"`{'.'.join(map(str, parent))}`"
        hint = suggestion_hint(suggestions)
        if not parent and not suggestions:
            # `temprature:` at the top: a model setting, which belongs under `config:`
            in_config = did_you_mean(key, list(SECTIONS[("config",)]))
            if in_config:
                hint = f" Did you mean '{in_config[0]}' (a setting under `config:`)?"
        yield Finding(
            "unknown-key",
            Severity.WARNING,
            entry.key_range,
            f"Unknown key '{key}' in the {where}.{hint}",
            fixes=replace_fixes(entry.key_range, suggestions, "key"),
        )


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


# (path, predicate, message): a value that fails the predicate is an invalid-value error.
_RULES: list[tuple[tuple[str, ...], Any, str]] = [
    (("name",), lambda v: isinstance(v, str), "`name` must be a string"),
    (("description",), lambda v: isinstance(v, str), "`description` must be a string"),
    (
        ("model",),
        lambda v: isinstance(v, (str, dict)) and bool(v),
        "`model` must be a model id string",
    ),
    (("config",), lambda v: isinstance(v, dict), "`config` must be a mapping"),
    (
        ("input",),
        lambda v: isinstance(v, dict),
        "`input` must be a mapping with `schema` and `default`",
    ),
    (
        ("input", "schema"),
        lambda v: isinstance(v, dict),
        "`input.schema` must be a mapping `name: type, description`",
    ),
    (
        ("input", "default"),
        lambda v: isinstance(v, dict),
        "`input.default` must be a mapping of values",
    ),
    (
        ("tokens",),
        lambda v: isinstance(v, list) and all(isinstance(t, str) and t for t in v),
        "`tokens` must be a list of strings",
    ),
    (
        ("examples",),
        lambda v: isinstance(v, (str, list)),
        "`examples` must be a file path or a list of examples",
    ),
    (("metrics",), lambda v: isinstance(v, list), "`metrics` must be a list"),
    (("eval",), lambda v: isinstance(v, dict), "`eval` must be a mapping"),
    (
        ("config", "temperature"),
        lambda v: _number(v) and 0 <= v <= 2,
        "`temperature` must be a number from 0 to 2",
    ),
    (
        ("config", "max_tokens"),
        lambda v: _integer(v) and v > 0,
        "`max_tokens` must be a positive integer",
    ),
    (
        ("config", "maxOutputTokens"),
        lambda v: _integer(v) and v > 0,
        "`maxOutputTokens` must be a positive integer",
    ),
    (
        ("config", "top_p"),
        lambda v: _number(v) and 0 <= v <= 1,
        "`top_p` must be a number from 0 to 1",
    ),
    (
        ("config", "topP"),
        lambda v: _number(v) and 0 <= v <= 1,
        "`topP` must be a number from 0 to 1",
    ),
    (("config", "top_k"), lambda v: _integer(v) and v > 0, "`top_k` must be a positive integer"),
    (("config", "topK"), lambda v: _integer(v) and v > 0, "`topK` must be a positive integer"),
    (
        ("config", "stop"),
        lambda v: isinstance(v, str) or _strings(v),
        "`stop` must be a string or a list of strings",
    ),
    (("config", "stopSequences"), _strings, "`stopSequences` must be a list of strings"),
    (
        ("config", "presence_penalty"),
        lambda v: _number(v) and -2 <= v <= 2,
        "`presence_penalty` must be from -2 to 2",
    ),
    (
        ("config", "frequency_penalty"),
        lambda v: _number(v) and -2 <= v <= 2,
        "`frequency_penalty` must be from -2 to 2",
    ),
    (("config", "seed"), _integer, "`seed` must be an integer"),
    (
        ("eval", "concurrency"),
        lambda v: _integer(v) and 1 <= v <= 256,
        "`concurrency` must be an integer from 1 to 256",
    ),
    (
        ("eval", "repeat"),
        lambda v: _integer(v) and 1 <= v <= 100,
        "`repeat` must be an integer from 1 to 100",
    ),
    (
        ("eval", "timeout"),
        lambda v: _number(v) and v > 0,
        "`timeout` must be a positive number of seconds",
    ),
    (("eval", "cache"), lambda v: isinstance(v, bool), "`cache` must be true or false"),
]


def check_values(doc: PromptDocument) -> Iterator[Finding]:
    by_path = {e.path: e for e in doc.entries}
    for path, valid, message in _RULES:
        # Prompty keeps the call's settings in `model.options` (v2) or `model.parameters` (v1)
        places = [path]
        if path[0] == "config" and len(path) == 2:
            places += [("model", "options", path[1]), ("model", "parameters", path[1])]
        for place in places:
            entry = by_path.get(place)
            if entry is not None and not valid(entry.value):
                yield Finding(
                    "invalid-value",
                    Severity.ERROR,
                    entry.value_range,
                    f"{message} (got {_show(entry.value)}).",
                )
    yield from _check_schema_types(doc)


def _check_schema_types(doc: PromptDocument) -> Iterator[Finding]:
    for field in doc.schema:
        if field.type in SCHEMA_TYPES:
            continue
        rng = field.type_range or field.range
        written = field.raw_type or field.type
        suggestions = did_you_mean(written.lower(), SCHEMA_TYPES)
        hint = suggestion_hint(suggestions)
        yield Finding(
            "invalid-value",
            Severity.ERROR,
            rng,
            f"Unknown type '{written}' for input '{field.name}': use one of {', '.join(SCHEMA_TYPES[:7])}.{hint}",
            fixes=replace_fixes(rng, suggestions, "type") if field.type_range else (),
        )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_model(doc: PromptDocument) -> Iterator[Finding]:
    entry = doc.entry("model")
    model = doc.model_id
    if entry is None or model is None:
        return
    meant = near_miss(model) if is_known_model(model) else None
    if is_known_model(model) and meant is None:
        return
    written = entry  # where the id is written: `model: id`, or Prompty's `model: {id: …}`
    if isinstance(entry.value, dict):
        id_entry = doc.entry("model", "id")
        if id_entry is not None and isinstance(id_entry.value, str) and id_entry.value == model:
            written = id_entry
    literal = isinstance(written.value, str)
    rng = written.value_range if literal else entry.key_range or entry.value_range
    suggestions = [meant] if meant is not None else suggest_models(model)
    hint = suggestion_hint(suggestions)
    why = (
        f"not among the {model.partition('/')[0]} models in litellm's model list"
        if meant is not None
        else "not in litellm's model list and no known provider prefix"
    )
    yield Finding(
        "unknown-model",
        Severity.WARNING,
        rng,
        f"Unknown model '{model}': {why}.{hint}",
        fixes=replace_fixes(rng, suggestions, "model") if literal else (),
    )


def metric_entries(doc: PromptDocument) -> Iterator[tuple[str, Entry, Range]]:
    """Each metric's name, its entry, and where the name is written."""
    for entry in doc.entries:
        if len(entry.path) != 2 or entry.path[0] != "metrics":
            continue
        if isinstance(entry.value, str):
            yield entry.value, entry, entry.value_range
        elif isinstance(entry.value, dict) and isinstance(entry.value.get("name"), str):
            name_entry = doc.entry(*entry.path, "name")
            yield (
                entry.value["name"],
                entry,
                name_entry.value_range if name_entry else entry.value_range,
            )


def check_metrics(doc: PromptDocument) -> Iterator[Finding]:
    for entry in doc.entries:
        if (
            len(entry.path) == 2
            and entry.path[0] == "metrics"
            and not _metric_shape_ok(entry.value)
        ):
            yield Finding(
                "invalid-value",
                Severity.ERROR,
                entry.value_range,
                "A metric is a name (`- rougeL`) or a mapping with `name` (`- {name: rouge1, threshold: 0.3}`).",
            )
        threshold = doc.entry(*entry.path, "threshold") if len(entry.path) == 2 else None
        if threshold is not None and not (_number(threshold.value) and 0 <= threshold.value <= 1):
            yield Finding(
                "invalid-value",
                Severity.ERROR,
                threshold.value_range,
                "`threshold` must be a number from 0 to 1.",
            )
    for name, _entry, rng in metric_entries(doc):
        if name in METRICS:
            continue
        suggestions = suggest_metric(name)
        hint = suggestion_hint(suggestions)
        yield Finding(
            "unknown-metric",
            Severity.ERROR,
            rng,
            f"Unknown metric '{name}'. Known: {', '.join(METRICS)}.{hint}",
            fixes=replace_fixes(rng, suggestions, "metric"),
        )


def _metric_shape_ok(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, dict) and isinstance(value.get("name"), str)
    )
