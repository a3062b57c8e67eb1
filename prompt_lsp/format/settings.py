"""The front matter read once, into typed values: what the checks report, what a run uses.

Every rule about a front matter value lives here. `read_settings` returns the values that pass
their rule and one `SettingProblem` per value that does not; the checks turn the problems into
diagnostics, and a run refuses to start while any error-level problem remains. So whatever the
editor accepts, `eval` runs, and whatever `eval` runs, the editor accepts.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prompt_lsp.catalog.metrics import METRICS, suggest_metric
from prompt_lsp.catalog.models import DEFAULT_MODEL
from prompt_lsp.format.keys import SCHEMA_TYPES
from prompt_lsp.format.model import Entry, Range, SchemaField
from prompt_lsp.format.text import one_line


@dataclass(frozen=True)
class SettingProblem:
    """A front matter value that breaks its rule. `suggestions` replace the text at `range`."""

    code: str  # "invalid-value" | "unknown-metric"
    message: str
    range: Range
    error: bool = True
    suggestions: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricSetting:
    """One entry of `metrics:`; the first is the headline score."""

    name: str
    threshold: float | None
    options: dict[str, Any]
    key: str  # how scores are keyed: the name, or `name#2` when a metric appears twice
    range: Range  # where the name is written
    known: bool = True  # a built-in metric


@dataclass(frozen=True)
class RunSettings:
    """`eval:` — None where the file says nothing (the caller's default applies)."""

    concurrency: int | None = None
    repeat: int | None = None
    timeout: float | None = None
    cache: bool | None = None


@dataclass(frozen=True)
class PromptSettings:
    name: str | None = None
    description: str | None = None
    model: str | None = None  # as the file names it (Prompty's object form resolved)
    model_entry: Entry | None = None  # where the model id is written
    config: dict[str, Any] = field(default_factory=dict)  # Dotprompt/Prompty names resolved
    examples: str | list[Any] | None = None  # a path relative to the file, or inline examples
    metrics: tuple[MetricSetting, ...] = ()
    metrics_declared: bool = False  # `metrics:` is present (possibly empty)
    run: RunSettings = field(default_factory=RunSettings)
    tokens: tuple[str, ...] = ()
    template: str | None = None  # the template language the file names, if any
    problems: tuple[SettingProblem, ...] = ()

    def model_or_default(self, default_model: str | None = None) -> str:
        """The one fallback rule: the file's model, else the editor's/CLI's default, else the
        embedded model."""
        return self.model or default_model or DEFAULT_MODEL

    @property
    def errors(self) -> list[SettingProblem]:
        return [p for p in self.problems if p.error]


# ---------------------------------------------------------------- value rules


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def _between(low: float, high: float, integer: bool = False) -> Callable[[Any], bool]:
    def valid(v: Any) -> bool:
        return (_integer(v) if integer else _number(v)) and low <= v <= high

    return valid


def _positive(integer: bool) -> Callable[[Any], bool]:
    return lambda v: (_integer(v) if integer else _number(v)) and v > 0


Rule = tuple[tuple[str, ...], Callable[[Any], bool], str]

RULES: list[Rule] = [
    (("name",), lambda v: isinstance(v, str), "`name` must be a string"),
    (("description",), lambda v: isinstance(v, str), "`description` must be a string"),
    (
        ("model",),
        lambda v: isinstance(v, str | dict) and bool(v),
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
        lambda v: isinstance(v, str | list),
        "`examples` must be a file path or a list of examples",
    ),
    (
        ("metrics",),
        lambda v: isinstance(v, str | list | dict),
        "`metrics` must be a metric name or a list of metrics",
    ),
    (("eval",), lambda v: isinstance(v, dict), "`eval` must be a mapping"),
    (
        ("config", "temperature"),
        _between(0, 2),
        "`temperature` must be a number from 0 to 2",
    ),
    (("config", "max_tokens"), _positive(True), "`max_tokens` must be a positive integer"),
    (
        ("config", "maxOutputTokens"),
        _positive(True),
        "`maxOutputTokens` must be a positive integer",
    ),
    (("config", "top_p"), _between(0, 1), "`top_p` must be a number from 0 to 1"),
    (("config", "topP"), _between(0, 1), "`topP` must be a number from 0 to 1"),
    (("config", "top_k"), _positive(True), "`top_k` must be a positive integer"),
    (("config", "topK"), _positive(True), "`topK` must be a positive integer"),
    (
        ("config", "stop"),
        lambda v: isinstance(v, str) or _strings(v),
        "`stop` must be a string or a list of strings",
    ),
    (("config", "stopSequences"), _strings, "`stopSequences` must be a list of strings"),
    (
        ("config", "presence_penalty"),
        _between(-2, 2),
        "`presence_penalty` must be from -2 to 2",
    ),
    (
        ("config", "frequency_penalty"),
        _between(-2, 2),
        "`frequency_penalty` must be from -2 to 2",
    ),
    (("config", "seed"), _integer, "`seed` must be an integer"),
    (
        ("eval", "concurrency"),
        _between(1, 256, integer=True),
        "`concurrency` must be an integer from 1 to 256",
    ),
    (
        ("eval", "repeat"),
        _between(1, 100, integer=True),
        "`repeat` must be an integer from 1 to 100",
    ),
    (("eval", "timeout"), _positive(False), "`timeout` must be a positive number of seconds"),
    (("eval", "cache"), lambda v: isinstance(v, bool), "`cache` must be true or false"),
]


def show_value(value: Any) -> str:
    return one_line(repr(value), 40)


# ---------------------------------------------------------------- reading


def read_settings(
    metadata: Mapping[str, Any], entries: list[Entry], schema: list[SchemaField]
) -> PromptSettings:
    """Typed values of a parsed front matter (`metadata` has the aliases resolved)."""
    by_path = {e.path: e for e in entries}
    problems: list[SettingProblem] = []
    invalid = _check_rules(by_path, problems)

    def valid(*path: str) -> Any:
        entry = by_path.get(path)
        return None if path in invalid else (entry.value if entry else None)

    problems += _schema_type_problems(schema)
    metrics = _read_metrics(metadata.get("metrics"), by_path, problems)
    model = metadata.get("model")
    model = model if isinstance(model, str) and model else None
    config = metadata.get("config")
    tokens = metadata.get("tokens") if ("tokens",) not in invalid else None
    examples = metadata.get("examples")
    name, description = valid("name"), valid("description")
    return PromptSettings(
        name=name,
        description=description,
        model=model,
        model_entry=_model_entry(by_path, model),
        config=dict(config) if isinstance(config, dict) else {},
        examples=examples if isinstance(examples, str | list) else None,
        metrics=tuple(metrics),
        metrics_declared="metrics" in metadata,
        run=RunSettings(
            concurrency=valid("eval", "concurrency"),
            repeat=valid("eval", "repeat"),
            timeout=_float_or_none(valid("eval", "timeout")),
            cache=valid("eval", "cache"),
        ),
        tokens=tuple(tokens) if isinstance(tokens, list) else (),
        template=_template_language(metadata.get("template")),
        problems=tuple(problems),
    )


def _check_rules(by_path: dict[tuple, Entry], problems: list[SettingProblem]) -> set[tuple]:
    """Apply RULES; return the paths whose values broke them."""
    invalid: set[tuple] = set()
    for path, is_valid, message in RULES:
        places = [path]
        # Prompty keeps the call's settings in `model.options` (v2) or `model.parameters` (v1)
        if path[0] == "config" and len(path) == 2:
            places += [("model", "options", path[1]), ("model", "parameters", path[1])]
        for place in places:
            entry = by_path.get(place)
            if entry is not None and not is_valid(entry.value):
                invalid.add(place)
                problems.append(
                    SettingProblem(
                        "invalid-value",
                        f"{message} (got {show_value(entry.value)}).",
                        entry.value_range,
                    )
                )
    return invalid


def _float_or_none(value: Any) -> float | None:
    return float(value) if value is not None else None


def _template_language(value: Any) -> str | None:
    """`template: jinja2`, or Prompty's `template: {format: {kind: mustache}}` / `{format: x}`."""
    if isinstance(value, str):
        return value.strip().lower() or None
    if isinstance(value, dict):
        fmt = value.get("format")
        if isinstance(fmt, dict):
            fmt = fmt.get("kind")
        if isinstance(fmt, str):
            return fmt.strip().lower() or None
    return None


def _model_entry(by_path: dict[tuple, Entry], model: str | None) -> Entry | None:
    """Where the model id is written: `model: id`, or Prompty's `model: {id: …}`."""
    entry = by_path.get(("model",))
    if entry is None or model is None:
        return entry
    if isinstance(entry.value, dict):
        id_entry = by_path.get(("model", "id"))
        if id_entry is not None and id_entry.value == model:
            return id_entry
    return entry


def _schema_type_problems(schema: list[SchemaField]) -> list[SettingProblem]:
    problems = []
    for item in schema:
        if item.type in SCHEMA_TYPES:
            continue
        written = item.raw_type or item.type
        suggestions = difflib.get_close_matches(written.lower(), SCHEMA_TYPES, n=3, cutoff=0.6)
        hint = f" Did you mean '{suggestions[0]}'?" if suggestions else ""
        problems.append(
            SettingProblem(
                "invalid-value",
                f"Unknown type '{written}' for input '{item.name}': use one of "
                f"{', '.join(SCHEMA_TYPES[:7])}.{hint}",
                item.type_range or item.range,
                suggestions=tuple(suggestions) if item.type_range else (),
            )
        )
    return problems


# ---------------------------------------------------------------- metrics

METRIC_SHAPE = (
    "A metric is a name (`- rougeL`) or a mapping with `name` (`- {name: rouge1, threshold: 0.3}`)."
)


def _read_metrics(
    raw: Any, by_path: dict[tuple, Entry], problems: list[SettingProblem]
) -> list[MetricSetting]:
    """`metrics:` as a name, a list of names, `{name, threshold?, ...options}` mappings, or
    `{rougeL: {threshold: 0.3}}` mappings keyed by the name."""
    if raw is None:
        return []
    if isinstance(raw, list):
        items = [(item, by_path.get(("metrics", i))) for i, item in enumerate(raw)]
    elif isinstance(raw, str | dict):
        items = [(raw, by_path.get(("metrics",)))]
    else:
        return []  # the type rule has reported it
    metrics: list[MetricSetting] = []
    counts: dict[str, int] = {}
    for item, entry in items:
        if entry is None:
            continue
        metric = _read_metric(item, entry, by_path, problems)
        if metric is None:
            continue
        counts[metric.name] = counts.get(metric.name, 0) + 1
        if counts[metric.name] > 1:
            metric = MetricSetting(
                metric.name,
                metric.threshold,
                metric.options,
                f"{metric.name}#{counts[metric.name]}",
                metric.range,
                metric.known,
            )
        metrics.append(metric)
    return metrics


def _read_metric(
    item: Any, entry: Entry, by_path: dict[tuple, Entry], problems: list[SettingProblem]
) -> MetricSetting | None:
    name_range = entry.value_range
    options: dict[str, Any] = {}
    threshold_entry: Entry | None = None
    if isinstance(item, str):
        name = item.strip()
    elif isinstance(item, dict) and isinstance(item.get("name"), str):
        name = item["name"].strip()
        name_entry = by_path.get((*entry.path, "name"))
        name_range = name_entry.value_range if name_entry else name_range
        options = {str(k): v for k, v in item.items() if k not in ("name", "threshold")}
        threshold_entry = by_path.get((*entry.path, "threshold"))
    elif isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item)), str):
        ((name, nested),) = item.items()
        name_entry = by_path.get((*entry.path, name))
        name_range = name_entry.key_range if name_entry and name_entry.key_range else name_range
        if nested is not None and not isinstance(nested, dict):
            problems.append(SettingProblem("invalid-value", METRIC_SHAPE, entry.value_range))
            return None
        nested = nested or {}
        options = {str(k): v for k, v in nested.items() if k != "threshold"}
        threshold_entry = by_path.get((*entry.path, name, "threshold"))
    else:
        problems.append(SettingProblem("invalid-value", METRIC_SHAPE, entry.value_range))
        return None
    threshold = None
    if threshold_entry is not None:
        if _between(0, 1)(threshold_entry.value):
            threshold = float(threshold_entry.value)
        else:
            problems.append(
                SettingProblem(
                    "invalid-value",
                    "`threshold` must be a number from 0 to 1.",
                    threshold_entry.value_range,
                )
            )
    known = name in METRICS
    if not known:
        suggestions = suggest_metric(name)
        hint = f" Did you mean '{suggestions[0]}'?" if suggestions else ""
        problems.append(
            SettingProblem(
                "unknown-metric",
                f"Unknown metric '{name}'. Known: {', '.join(METRICS)}.{hint}",
                name_range,
                suggestions=tuple(suggestions),
            )
        )
    return MetricSetting(name, threshold, options, name, name_range, known)
