"""Dotprompt's spec suite and Prompty's parse/render vectors, run through prompt-lsp's own
parse and render calls. Used by tests/test_dotprompt.py, tests/test_prompty.py and
bench/format_specs.py (which prints the pass rates).

Data vendored from google/dotprompt `spec/**/*.yaml` (Apache-2.0, tests/data/dotprompt/LICENSE)
and microsoft/prompty `schema/tsp-output/.typra-generated/vectors.json` (MIT,
tests/data/prompty/LICENSE).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from prompt_lsp.format.formats_render import (
    ROLE_MAP,
    PartialFiles,
    parse_prompty,
    render_dotprompt,
    render_prompty_text,
)
from prompt_lsp.format.language import TemplateLanguage
from prompt_lsp.format.parser import parse
from prompt_lsp.format.render import render_messages

DATA = Path(__file__).parent / "data"
DOTPROMPT_SPEC = DATA / "dotprompt" / "spec"
PROMPTY_VECTORS = DATA / "prompty" / "vectors.json"


@dataclass
class Outcome:
    name: str
    passed: bool
    detail: str = ""


def dotprompt_cases() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(id, suite, test) for every spec test that expects rendered messages."""
    cases = []
    for path in sorted(DOTPROMPT_SPEC.glob("**/*.yaml")):
        for suite in yaml.safe_load(path.read_text(encoding="utf-8")):
            for test in suite.get("tests", []):
                if "messages" in test.get("expect", {}):
                    name = f"{path.relative_to(DOTPROMPT_SPEC)}::{suite['name']}::{test['desc']}"
                    cases.append((name, suite, test))
    return cases


def _expected_messages(messages: list[dict[str, Any]]) -> list[tuple[str, str, tuple[str, ...]]]:
    result = []
    for message in messages:
        parts = message.get("content") or []
        text = "".join(p["text"] for p in parts if "text" in p)
        media = tuple(p["media"]["url"] for p in parts if "media" in p)
        role = ROLE_MAP.get(message["role"], message["role"])
        result.append((role, text, media))
    return result


def run_dotprompt_case(
    suite: dict[str, Any], test: dict[str, Any], language_setting: str | None
) -> Outcome:
    """Render the suite's template as a file `prompt.prompt` (its partials as `_name.prompt`
    beside it) the way prompt-lsp renders a Dotprompt file: recognised by `parse` (with the
    workspace setting `language_setting`), rendered by our render call."""
    data = {**(suite.get("data") or {}), **(test.get("data") or {})}
    # call-time options' `input.default` (Dotprompt merges them under the input)
    call_defaults = ((test.get("options") or {}).get("input") or {}).get("default") or {}
    values = {**call_defaults, **(data.get("input") or {})}
    with tempfile.TemporaryDirectory() as folder:
        partials = {**suite.get("partials", {}), **suite.get("resolverPartials", {})}
        for name, source in partials.items():
            (Path(folder) / f"_{name}.prompt").write_text(source, encoding="utf-8")
        path = Path(folder) / "prompt.prompt"
        path.write_text(suite["template"], encoding="utf-8")
        doc = parse(suite["template"], path=str(path), language_setting=language_setting)
        try:
            if doc.template_format.language is TemplateLanguage.HANDLEBARS:
                rendered = render_dotprompt(
                    doc.text,
                    values,
                    partials=PartialFiles(str(path)),
                    context=data.get("context"),
                    history=data.get("messages"),
                    schemas=suite.get("schemas"),
                )
                got = [(m.role, m.text, m.media) for m in rendered]
            else:  # read as another format: rendered by that format's rules
                got = [(m.role, m.content, m.media) for m in render_messages(doc, values)]
        except Exception as err:
            return Outcome("", False, f"{doc.template_format.label}: render error: {err}")
    want = _expected_messages(test["expect"]["messages"])
    detail = "" if got == want else f"{doc.template_format.label}: got {got!r}, want {want!r}"
    return Outcome("", got == want, detail)


def dotprompt_results(language_setting: str | None) -> list[Outcome]:
    results = []
    for name, suite, test in dotprompt_cases():
        outcome = run_dotprompt_case(suite, test, language_setting)
        outcome.name = name
        results.append(outcome)
    return results


def prompty_vectors() -> list[dict[str, Any]]:
    """The Parser.parse and Renderer.render vectors, thread/nonce ones aside."""
    vectors = json.loads(PROMPTY_VECTORS.read_text(encoding="utf-8"))["vectors"]
    chosen = []
    for item in vectors:
        if (item["contract"], item["operation"]) not in (
            ("Parser", "parse"),
            ("Renderer", "render"),
        ):
            continue
        vector = item["vector"]
        if "thread" in vector["name"] or "nonce" in vector["name"]:
            continue
        chosen.append(vector)
    return chosen


def run_prompty_vector(vector: dict[str, Any]) -> Outcome:
    inputs, expected = vector["input"], vector["expected"]
    if vector["stage"] == "parse" or "rendered" in inputs:
        got = [
            {
                "role": m.role,
                "content": [{"kind": "text", "value": m.text}],
                **({"metadata": m.metadata} if m.metadata else {}),
            }
            for m in parse_prompty(inputs["rendered"])
        ]
        want = expected["messages"]
    else:
        language = TemplateLanguage(inputs.get("engine", "jinja2"))
        got = render_prompty_text(inputs["template"], inputs.get("inputs") or {}, language)
        want = expected["rendered"]
    return Outcome(
        vector["name"], got == want, "" if got == want else f"got {got!r}, want {want!r}"
    )


def prompty_results() -> list[Outcome]:
    return [run_prompty_vector(v) for v in prompty_vectors()]
