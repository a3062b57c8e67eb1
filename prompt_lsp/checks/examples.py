"""Checks of the examples a prompt is evaluated on."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from pathlib import Path

from prompt_lsp.catalog.metrics import METRICS
from prompt_lsp.catalog.models import lookup_model
from prompt_lsp.catalog.tokenizer import count_tokens
from prompt_lsp.checks.findings import Finding, Fix, Location, Severity
from prompt_lsp.format.examples import ExampleSet, examples_path
from prompt_lsp.format.model import PromptDocument, Range
from prompt_lsp.format.render import (
    RenderError,
    RenderLimitExceeded,
    render_text,
    split_rendered,
)

MAX_REPORTED = 20  # per code: a broken 5,000-line file must not drown the editor


def examples_range(doc: PromptDocument) -> Range:
    entry = doc.entry("examples") or doc.entry("sample")
    if entry is not None:
        return (
            entry.value_range
            if isinstance(entry.value, str)
            else entry.key_range or entry.value_range
        )
    return Range.of(0, 0, end=len(doc.lines[0]))


def _line_location(examples: ExampleSet, doc: PromptDocument, line: int, message: str) -> Location:
    if examples.source is None:  # inline: the line is in the prompt itself
        return Location(
            None,
            Range.of(line, 0, end=len(doc.lines[line]) if line < len(doc.lines) else 0),
            message,
        )
    return Location(examples.source, Range.of(line, 0), message)


def check_examples_file(
    doc: PromptDocument, examples: ExampleSet | None, prompt_path: Path | None
) -> Iterator[Finding]:
    if examples is None:
        if doc.has_front_matter or doc.text.strip():
            yield Finding(
                "no-examples",
                Severity.INFORMATION,
                Range.of(0, 0, end=len(doc.lines[0])),
                "No examples yet: add `examples: my.examples.jsonl` to evaluate this prompt.",
            )
        return
    rng = examples_range(doc)
    if examples.missing:
        path = examples_path(doc, prompt_path)
        yield Finding(
            "examples-not-found",
            Severity.ERROR,
            rng,
            f"Examples file '{doc.settings.examples}' does not exist.",
            fixes=(_create_examples_fix(doc, path),) if path is not None else (),
        )
        return
    if examples.error:
        yield Finding("examples-not-found", Severity.ERROR, rng, f"Examples: {examples.error}.")
        return
    name = examples.source.name if examples.source else "inline examples"
    for problem in examples.problems[:MAX_REPORTED]:
        where = _line_location(examples, doc, problem.line, problem.message)
        yield Finding(
            "examples-syntax",
            Severity.ERROR,
            rng,
            f"{name}:{problem.line + 1}: {problem.message}",
            related=(where,),
            elsewhere=where,
        )
    if not examples.examples and not examples.problems:
        yield Finding(
            "no-examples",
            Severity.INFORMATION,
            rng,
            f"{'The examples list' if examples.source is None else name} has no examples yet: "
            "Evaluate will not be available.",
        )


def _create_examples_fix(doc: PromptDocument, path: Path) -> Fix:
    names = [f.name for f in doc.schema] or sorted(doc.used_variable_names)
    skeleton = {"input": {name: "" for name in names}, "expected": ""}
    if path.suffix.lower() == ".csv":
        content = (
            ",".join(["id", *names, "expected"])
            + "\n"
            + ",".join(["1", *("" for _ in names), ""])
            + "\n"
        )
    elif path.suffix.lower() in (".yaml", ".yml"):
        content = "- input:\n" + "".join(f'    {n}: ""\n' for n in names) + '  expected: ""\n'
    elif path.suffix.lower() == ".json":
        content = json.dumps([skeleton], indent=2) + "\n"
    else:
        content = json.dumps(skeleton) + "\n"
    return Fix(
        f"Create {path.name} with a skeleton example",
        create_file=path,
        file_content=content,
        preferred=True,
    )


def required_variables(doc: PromptDocument) -> set[str]:
    """Variables every example must give: required schema inputs without a default, or, with no
    schema, every variable the template uses that has no default."""
    if doc.has_schema:
        return {f.name for f in doc.schema if not f.optional and f.name not in doc.defaults}
    return doc.used_variable_names - set(doc.defaults)


def check_example_variables(doc: PromptDocument, examples: ExampleSet) -> Iterator[Finding]:
    if not doc.has_schema and not doc.defaults:
        return  # the examples themselves declare the variables
    required = required_variables(doc)
    rng = examples_range(doc)
    lacking = heapq.nsmallest(  # grouped by input names: one set difference per group
        MAX_REPORTED,
        (
            (example, sorted(required - names))
            for names, group in examples.by_input_names.items()
            if required - names
            for example in group
        ),
        key=lambda pair: pair[0].index,
    )
    for example, missing in lacking:
        names = ", ".join(f"'{m}'" for m in missing)
        message = f"example {example.id} lacks {names}"
        where = _line_location(examples, doc, example.line, message)
        yield Finding(
            "example-missing-variable",
            Severity.ERROR,
            rng,
            f"Example {example.id} (line {example.line + 1}) lacks required variable {names}.",
            related=(where,),
            elsewhere=where,
        )


def check_expected(doc: PromptDocument, examples: ExampleSet) -> Iterator[Finding]:
    for metric in doc.settings.metrics:
        name, rng = metric.name, metric.range
        info = METRICS.get(name)
        if (
            info is None
            or not info.needs_expected
            or (name == "regex" and metric.options.get("pattern"))
        ):
            continue
        lacking = [e for e in examples.examples if not e.has_expected]
        if not lacking:
            continue
        ids = ", ".join(e.id for e in lacking[:5]) + ("…" if len(lacking) > 5 else "")
        yield Finding(
            "missing-expected",
            Severity.WARNING,
            rng,
            f"'{name}' compares with `expected`, which {len(lacking)} of {len(examples.examples)} examples lack ({ids}).",
        )


def check_context(
    doc: PromptDocument, examples: ExampleSet, default_model: str | None
) -> Iterator[Finding]:
    """Render the largest example and count its tokens against the model's context window."""
    model = doc.settings.model_or_default(default_model)
    info = lookup_model(model)
    limit = info.max_input_tokens if info else None
    if not limit or not examples.examples or not doc.template_ok:
        return
    largest = examples.largest
    if largest is None:
        return
    try:
        # rendering stops a good way past the limit: enough to know, without building the
        # whole text of a loop typed half-way
        rendered, cut = render_text(doc, largest.inputs, max_chars=limit * 8)
    except RenderLimitExceeded as err:
        yield Finding(
            "render-limit", Severity.WARNING, examples_range(doc), f"Example {largest.id}: {err}"
        )
        return
    except RenderError:
        return
    text = rendered if cut else "\n".join(m.content for m in split_rendered(rendered))
    # A token is at least one UTF-8 byte (not one character: rare scripts take several tokens
    # a character), so a text of no more bytes than the limit cannot overflow.
    if len(text) <= limit and len(text.encode("utf-8", "surrogatepass")) <= limit:
        return
    tokens = count_tokens(text, model)
    if tokens <= limit:
        return
    rng = examples_range(doc)
    count = f"over {tokens:,}" if cut else f"{tokens:,}"  # rendering stopped early
    where = Location(
        examples.source, Range.of(largest.line, 0), f"example {largest.id}: {count} tokens"
    )
    yield Finding(
        "context-overflow",
        Severity.WARNING,
        rng,
        f"Example {largest.id} renders to {count} tokens, more than {model}'s {limit:,}-token context window.",
        related=(where,),
    )
