"""The editor and `eval` read the front matter the same way: every shape the README and the
corpus use, and the shapes that used to disagree, go to both the checks and the run planner,
which must accept and reject the same files and read the same values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from prompt_lsp.checks import Severity, check_document
from prompt_lsp.evaluation.examples import load_examples
from prompt_lsp.evaluation.options import EvalOptions, EvalSetupError
from prompt_lsp.evaluation.runner import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_S
from prompt_lsp.evaluation.session import plan_run
from prompt_lsp.format import parse

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted((ROOT / "tests" / "corpus").rglob("*.prompt*"))
FRONT_MATTER_CODES = {"invalid-value", "unknown-metric", "yaml-syntax"}

BODY = "Answer: {{ q }}\n"
EXAMPLES = "examples:\n  - {id: a, input: {q: one}, expected: one}\n  - {id: b, input: {q: two}, expected: two}\n"

# Front matter lines (besides the examples) that must mean the same thing everywhere.
SHAPES = {
    "metric name": "metrics: rougeL",
    "metric list": "metrics: [rougeL, {name: rouge1, threshold: 0.3}]",
    "metric keyed by name": "metrics: [{rougeL: {threshold: 0.3}}]",
    "metric keyed, no options": "metrics: [{exact_match: }]",
    "metric options": "metrics: [{name: exact_match, ignore_case: true}]",
    "duplicate metric": "metrics: [exact_match, {name: exact_match, ignore_case: true}]",
    "unknown metric": "metrics: [rouge-l]",
    "metric without name": "metrics: [{threshold: 0.3}]",
    "threshold too high": "metrics: [{name: rougeL, threshold: 2}]",
    "threshold text": "metrics: [{name: rougeL, threshold: high}]",
    "metrics a number": "metrics: 3",
    "no metrics key": "",
    "empty metrics": "metrics: []",
    "concurrency 8": "eval: {concurrency: 8}",
    "concurrency 0": "eval: {concurrency: 0}",
    "concurrency 300": "eval: {concurrency: 300}",
    "concurrency text": "eval: {concurrency: many}",
    "repeat 3": "eval: {repeat: 3}",
    "repeat 0": "eval: {repeat: 0}",
    "timeout 5": "eval: {timeout: 5}",
    "timeout negative": "eval: {timeout: -1}",
    "cache false": "eval: {cache: false}",
    "cache 'no'": 'eval: {cache: "no"}',
    "cache no (YAML 1.1 text)": "eval: {cache: no}",
    "eval a list": "eval: [1, 2]",
    "temperature 0": "config: {temperature: 0}",
    "temperature 3": "config: {temperature: 3}",
    "Dotprompt names": "config: {maxOutputTokens: 20, topP: 0.5, stopSequences: [END]}",
    "Dotprompt bad value": "config: {topP: 7}",
    "Prompty model object": "model: {id: gpt-4o-mini, options: {temperature: 0.2}}",
    "Prompty bad option": "model: {id: gpt-4o-mini, options: {temperature: 9}}",
    "config a list": "config: [1]",
    "model empty": 'model: ""',
    "bad schema type": "input: {schema: {q: strnig}}",
    "tokens": 'tokens: ["<start>", "<end>"]',
    "tokens not strings": "tokens: [1, 2]",
}


def shape_text(line: str) -> str:
    model = "" if line.startswith("model:") else "model: openai/gpt-4o-mini\n"
    return f"---\n{model}{line}\n{EXAMPLES}---\n{BODY}"


def checks_reject(text: str, path: Path) -> list[str]:
    doc = parse(text, bounded=False)
    findings = check_document(doc, load_examples(doc, path), path)
    return [
        f"{f.code}: {f.message}"
        for f in findings
        if f.severity == Severity.ERROR and f.code in FRONT_MATTER_CODES
    ]


def front_matter_lines(text: str) -> int:
    lines = text.split("\n")
    return next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), len(lines))


def planner_verdict(text: str, path: Path):
    """(rejected for its front matter, the plan or None)."""
    try:
        return False, plan_run(path, text, EvalOptions())
    except EvalSetupError as err:
        match = re.match(r"line (\d+):", str(err))
        in_front_matter = bool(match) and int(match.group(1)) <= front_matter_lines(text) + 1
        return in_front_matter, None


def assert_agree(text: str, path: Path) -> None:
    rejected_by_checks = checks_reject(text, path)
    rejected_by_planner, plan = planner_verdict(text, path)
    assert bool(rejected_by_checks) == rejected_by_planner, (rejected_by_checks, text)
    if plan is not None:
        assert_same_values(text, plan)


def assert_same_values(text: str, plan) -> None:
    """The planner's values are the ones the file says (read here straight from YAML) and the
    ones the editor shows (the typed settings)."""
    doc = parse(text, bounded=False)
    settings = doc.settings
    assert [m.key for m in plan.metrics] == [m.key for m in settings.metrics] or (
        not settings.metrics_declared and [m.name for m in plan.metrics] == ["rougeL"]
    )
    assert [(m.name, m.threshold, m.options) for m in plan.metrics if settings.metrics] == [
        (m.name, m.threshold, m.options) for m in settings.metrics
    ]
    raw = yaml.safe_load(text.split("---\n")[1]) or {}
    run = raw.get("eval") if isinstance(raw.get("eval"), dict) else {}
    assert plan.concurrency == run.get("concurrency", DEFAULT_CONCURRENCY)
    assert plan.repeat == run.get("repeat", 1)
    assert plan.timeout_s == run.get("timeout", DEFAULT_TIMEOUT_S)
    assert plan.use_cache == run.get("cache", True)
    assert plan.model == settings.model_or_default()
    metrics = raw.get("metrics")
    if isinstance(metrics, str):
        assert [m.name for m in plan.metrics] == [metrics]
    elif isinstance(metrics, list):
        names = [m if isinstance(m, str) else m.get("name", next(iter(m))) for m in metrics]
        assert [m.name for m in plan.metrics] == names


@pytest.mark.parametrize("line", SHAPES.values(), ids=SHAPES.keys())
def test_shapes_agree(line: str, tmp_path: Path) -> None:
    path = tmp_path / "shape.prompt"
    text = shape_text(line)
    path.write_text(text, encoding="utf-8")
    assert_agree(text, path)


def test_the_disagreements_once_reported_are_gone(tmp_path: Path) -> None:
    """`metrics: [{rougeL: {threshold: 0.3}}]` and `metrics: rougeL` are accepted by both;
    `eval.concurrency: 300` and `eval.cache: "no"` rejected by both."""
    path = tmp_path / "p.prompt"
    for line, accepted in [
        ("metrics: [{rougeL: {threshold: 0.3}}]", True),
        ("metrics: rougeL", True),
        ("eval: {concurrency: 300}", False),
        ('eval: {cache: "no"}', False),
    ]:
        text = shape_text(line)
        path.write_text(text, encoding="utf-8")
        assert (not checks_reject(text, path)) is accepted, line
        assert (planner_verdict(text, path)[1] is not None) is accepted, line


def test_readme_example_agrees(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(---\n.*?\n---\n.*?)```", readme, re.S)
    assert block is not None
    text = block.group(1)
    (tmp_path / "news.examples.jsonl").write_text(
        '{"input": {"article": "Rain."}, "expected": "It rained."}\n', encoding="utf-8"
    )
    path = tmp_path / "news.prompt"
    path.write_text(text, encoding="utf-8")
    assert_agree(text, path)
    assert checks_reject(text, path) == []


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_agrees(path: Path) -> None:
    assert_agree(path.read_text(encoding="utf-8"), path)
