"""`prompt-lsp optimize`: candidate generators, honest selection, budget, cache, history.

The providers here are scripted transports whose accuracy depends on the prompt in a known way,
so the test knows which change must win and can check that the optimizer found it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from prompt_lsp.evaluation.optimize import GENERATORS, OptimizeSettings, optimize_prompt
from prompt_lsp.evaluation.optimize.edits import demonstration_variants, find_query, set_config
from prompt_lsp.evaluation.optimize.split import split_examples
from prompt_lsp.evaluation.options import EvalOptions, EvalSetupError
from prompt_lsp.evaluation.providers import ModelReply
from prompt_lsp.format import parse
from prompt_lsp.history.store import HistoryStore

PROMPT = """
---
model: direct/model
description: Label the sentiment of a short review
config:
  temperature: 0
examples: cases.jsonl
metrics:
  - exact_match
---
system:
Label the review.
user:
Review: {{ review }}
Sentiment:
"""
LABELS = ("positive", "negative", "neutral")


def reviews(count: int = 36) -> dict[str, str]:
    """Review text → label, balanced over the three labels."""
    return {f"review number {i} about item {i * 7 % 11}": LABELS[i % 3] for i in range(count)}


def cases(table: dict[str, str]) -> str:
    return "\n".join(
        json.dumps({"id": f"r{i:02d}", "input": {"review": text}, "expected": label})
        for i, (text, label) in enumerate(table.items())
    )


def whole_prompt(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


def query_of(prompt: str) -> str:
    """The review being asked about: the last `Review:` line (framing tokens removed)."""
    line = re.findall(r"Review: (.*)", prompt)[-1]
    return line.replace("<start>", "").replace("<end>", "").strip()


class Recorder:
    """A transport that answers by `rule(prompt, right_label)` and keeps every prompt."""

    def __init__(self, table: dict[str, str], rule: Callable[[str, str], bool]) -> None:
        self.table, self.rule = table, rule
        self.prompts: list[str] = []

    async def __call__(
        self, model: str, messages: list[dict[str, str]], config: dict[str, object], timeout: float
    ) -> ModelReply:
        prompt = whole_prompt(messages)
        self.prompts.append(prompt)
        right = self.table[query_of(prompt)]
        return ModelReply(right if self.rule(prompt, right) else "unsure", 10, 1)


def needs_a_demonstration(prompt: str, right: str) -> bool:
    """Right only when some demonstration in the prompt shows the right label."""
    return f"Sentiment: {right}" in prompt


def needs_seed_tokens(prompt: str, right: str) -> bool:
    return "Review: <start>" in prompt


def by_input_only(prompt: str, right: str) -> bool:
    """Right on about half of the inputs, whatever the prompt says."""
    return sum(map(ord, query_of(prompt))) % 2 == 0


async def optimize(path: Path, transport: Recorder, **settings: object) -> object:
    return await optimize_prompt(
        path, path.read_text(), EvalOptions(transport=transport), OptimizeSettings(**settings)
    )


@pytest.fixture
def workspace(write_prompt: Callable[..., Path]) -> Callable[..., Path]:
    def make(prompt: str = PROMPT, table: dict[str, str] | None = None) -> Path:
        return write_prompt(prompt, examples=cases(table or reviews()))

    return make


async def test_finds_the_demonstrations_that_help_and_never_selects_on_test(workspace) -> None:
    path = workspace()
    table = reviews()
    transport = Recorder(table, needs_a_demonstration)
    report = await optimize(path, transport)
    assert report.baseline.validation == 0.0
    assert report.winner is not None and report.winner.generator == "demonstrations"
    assert report.winner.validation == 1.0 and report.winner.test == 1.0
    assert report.reliable and "improvement: +1.000 exact_match" in report.verdict()
    # the winner's demonstrations are training examples, written in the prompt's own shape
    assert set(report.winner.demo_ids) <= set(report.split.train)
    assert (
        "Review: review number" in report.winner.text and "Sentiment: neutral" in report.winner.text
    )
    # no test example is in any prompt until the selection is over: the calls that contain
    # one are exactly the final test runs, at the end
    test_inputs = {text for i, text in enumerate(table) if f"r{i:02d}" in set(report.split.test)}
    has_test = [any(t in p for t in test_inputs) for p in transport.prompts]
    first = has_test.index(True)
    assert all(has_test[first:]) and not any(has_test[:first])
    assert all(query_of(p) in test_inputs for p in transport.prompts[first:])
    assert report.calls == len(transport.prompts) <= 300
    assert "+Review: review number" in report.diff()


async def test_finds_the_token_framing_that_helps(workspace) -> None:
    path = workspace()
    report = await optimize(path, Recorder(reviews(), needs_seed_tokens))
    assert report.winner is not None and report.winner.generator == "tokens"
    assert "Review: <start>{{ review }}<end>" in report.winner.text
    assert report.reliable


async def test_no_reliable_improvement_when_answers_ignore_the_prompt(workspace) -> None:
    path = workspace()
    report = await optimize(path, Recorder(reviews(), by_input_only))
    assert len(report.candidates) > 10  # it did try
    assert not report.reliable
    assert report.verdict().startswith("no reliable improvement found")
    assert report.baseline.test is not None  # the original is still reported on test


async def test_stops_at_the_budget_and_still_reports_on_test(workspace) -> None:
    path = workspace()
    transport = Recorder(reviews(), needs_a_demonstration)
    report = await optimize(path, transport, budget=60)
    assert len(transport.prompts) == report.calls <= 60
    n_val, n_test = len(report.split.validation), len(report.split.test)
    assert report.calls > 60 - n_val  # it used what the budget allowed
    assert report.stopped and "budget of 60" in report.stopped
    assert report.baseline.test is not None
    tested = [c for c in report.candidates if c.test is not None]
    assert len(tested) == 3  # the original, the winner and the runner-up
    assert report.calls == len(report.candidates) * n_val + len(tested) * n_test


async def test_a_second_run_is_answered_from_the_cache(workspace) -> None:
    path = workspace()
    first = await optimize(path, Recorder(reviews(), needs_a_demonstration))
    again = Recorder(reviews(), needs_a_demonstration)
    second = await optimize(path, again)
    assert again.prompts == [] and second.calls == 0
    assert second.winner is not None and first.winner is not None
    assert second.winner.text == first.winner.text and second.winner.test == first.winner.test


async def test_every_scored_candidate_is_kept_in_the_history(workspace) -> None:
    path = workspace()
    report = await optimize(path, Recorder(reviews(), needs_a_demonstration))
    with HistoryStore(path.parent / ".prompt-lsp" / "history.sqlite3") as store:
        kept = store.candidates_for_file("test.prompt")
        assert store.runs_for_file("test.prompt") == []  # candidates are not versions
    assert {c.version for c in kept} == {c.version for c in report.candidates}
    winner = next(c for c in kept if c.status == "winner")
    assert winner.text == report.winner.text and winner.test == 1.0


async def test_too_few_examples_is_a_clear_error(workspace) -> None:
    path = workspace(table=dict(list(reviews().items())[:5]))
    with pytest.raises(EvalSetupError, match="at least 8 examples"):
        await optimize(path, Recorder(reviews(), needs_a_demonstration))


async def test_a_budget_below_the_minimum_is_refused_before_any_call(workspace) -> None:
    path = workspace()
    transport = Recorder(reviews(), needs_a_demonstration)
    with pytest.raises(EvalSetupError, match="budget is too small"):
        await optimize(path, transport, budget=5)
    assert transport.prompts == []


def test_the_split_is_seeded_disjoint_and_independent_of_file_order(workspace) -> None:
    from prompt_lsp.evaluation.examples import load_examples

    path = workspace()
    examples = list(load_examples(parse(path.read_text()), path).examples)
    split = split_examples(examples, (0.5, 0.25, 0.25), seed=3)
    assert split == split_examples(list(reversed(examples)), (0.5, 0.25, 0.25), seed=3)
    assert split != split_examples(examples, (0.5, 0.25, 0.25), seed=4)
    parts = [set(split.train), set(split.validation), set(split.test)]
    assert sum(map(len, parts)) == len(examples) == len(set.union(*parts))
    assert (len(split.train), len(split.validation), len(split.test)) == (18, 9, 9)


def test_demonstrations_replace_the_existing_ones_in_the_same_shape() -> None:
    text = Path("samples/classify-sentiment/classify-sentiment.prompt").read_text()
    shape = find_query(parse(text))
    assert shape is not None and len(shape.demo_blocks) == 4
    from prompt_lsp.format.examples import Example

    train = [Example(i, f"t{i}", {"review": f"text {i}"}, LABELS[i % 3], True, i) for i in range(9)]
    variants = demonstration_variants(text, train, seed=0)
    assert variants
    for variant in variants:
        doc = parse(variant.text)
        assert not doc.problems
        demos = [s for s in variant.text.splitlines() if s.startswith("Sentiment: ")]
        assert len(demos) == len(variant.demo_ids)  # the old four are gone
        assert "Review: The soup was cold" not in variant.text
        assert variant.text.rstrip().endswith("Review: {{ review }}\nSentiment:")


def test_config_edits_keep_the_front_matter_valid() -> None:
    edited = set_config(PROMPT.lstrip(), "max_tokens", 5)
    edited = set_config(edited, "stop", ["\n"])
    edited = set_config(edited, "temperature", 0.5)
    settings = parse(edited).settings
    assert settings.config == {"temperature": 0.5, "max_tokens": 5, "stop": ["\n"]}
    assert not settings.errors


async def test_reflective_rewriting_through_gepa_finds_the_instruction(workspace) -> None:
    """The task model is right only when told to answer with the label; the reflection model,
    shown the failures, proposes exactly that instruction."""
    path = workspace()
    table = reviews()
    reflections: list[str] = []

    async def transport(model, messages, config, timeout) -> ModelReply:
        prompt = whole_prompt(messages)
        if model == "reflector/model":
            reflections.append(prompt)
            return ModelReply("```\nLabel the review. Answer with the label only.\n```", 50, 9)
        right = table[query_of(prompt)]
        return ModelReply(right if "Answer with the label only." in prompt else "unsure", 10, 1)

    report = await optimize_prompt(
        path,
        path.read_text(),
        EvalOptions(transport=transport),
        OptimizeSettings(generators=("reflection",), reflection_model="reflector/model"),
    )
    assert reflections, "gepa asked the reflection model"
    # the reflection model saw failing examples with their expected answers, never a test one
    test_inputs = [t for i, t in enumerate(table) if f"r{i:02d}" in set(report.split.test)]
    assert "Expected answer:" in reflections[0]
    assert not any(t in r for r in reflections for t in test_inputs)
    assert report.winner is not None and report.winner.generator == "reflection"
    assert "Answer with the label only." in report.winner.text
    assert report.reliable and report.winner.test == 1.0
    assert report.calls <= 300


def test_the_command_reports_applies_and_lists_candidates(
    workspace, scripted, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import Step

    from prompt_lsp.cli import main

    table = reviews()
    path = workspace(PROMPT.replace("direct/model", "scripted/test-model"))
    original = path.read_text()
    scripted.script(
        lambda prompt, attempt: Step(
            text=table[query_of(prompt)]
            if needs_a_demonstration(prompt, table[query_of(prompt)])
            else "unsure"
        )
    )
    assert main(["optimize", str(path), "--json", "-", "--no-instructions"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert err.startswith("prompt-lsp: optimize: up to ")  # the estimate, before any call
    assert report["reliable"] and report["winner"]["generator"] == "demonstrations"
    assert report["calls"] == scripted.call_count <= 300
    assert "+Sentiment: " in report["diff"]
    assert not any(c["generator"] == "instructions" for c in report["leaderboard"])

    # again, applying: every reply is cached, and the file gets the winner
    calls = scripted.call_count
    assert main(["optimize", str(path), "--apply", "--no-instructions"]) == 0
    out, err = capsys.readouterr()
    assert scripted.call_count == calls
    assert "improvement: +1.000 exact_match on held-out examples" in out
    assert "#  candidate  validation    test  what changed" in out
    assert path.read_text() == report["winner_text"] != original
    assert "the original is kept in the history" in err

    assert main(["history", str(path), "--candidates"]) == 0
    out, _ = capsys.readouterr()
    assert "applied" in out and "the original prompt" in out
    with HistoryStore(path.parent / ".prompt-lsp" / "history.sqlite3") as store:
        assert store.version_text("test.prompt", report["baseline"]["version"]) == original


def test_bad_flags_are_one_line_errors(workspace, capsys: pytest.CaptureFixture[str]) -> None:
    from prompt_lsp.cli import main

    path = workspace()
    assert main(["optimize", str(path), "--split", "0.5/0.5"]) == 2
    assert main(["optimize", str(path), "--budget", "0"]) == 2
    assert main(["optimize", str(path), *[f"--no-{g}" for g in GENERATORS]]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [
        "prompt-lsp: --split must be three positive fractions that sum to 1, got '0.5/0.5'",
        "prompt-lsp: --budget must be at least 1 model call",
        "prompt-lsp: every candidate generator is turned off",
    ]


@pytest.mark.local_model
async def test_a_small_optimisation_on_the_embedded_model(tmp_path: Path) -> None:
    """route-ticket on local/gemma-3-270m with 40 calls: real generations, the budget held, the
    test examples only in the final calls, every candidate kept."""
    pytest.importorskip("llama_cpp", reason="the `local` extra is not installed")
    import shutil

    from prompt_lsp.evaluation.providers import litellm_transport

    folder = tmp_path / "route-ticket"
    shutil.copytree(Path("samples/route-ticket"), folder)
    (tmp_path / ".git").mkdir()
    path = folder / "route-ticket.prompt"
    prompts: list[str] = []

    async def recording(model, messages, config, timeout) -> ModelReply:
        prompts.append(whole_prompt(messages))
        return await litellm_transport(model, messages, config, timeout)

    report = await optimize_prompt(
        path,
        path.read_text(),
        EvalOptions(transport=recording),
        OptimizeSettings(
            generators=("demonstrations",), split=(0.75, 0.125, 0.125), budget=40, test_top=1
        ),
    )
    assert report.calls == len(prompts) <= 40
    assert report.baseline.validation is not None and report.baseline.validation < 0.5  # weak
    assert len(report.candidates) >= 3 and report.baseline.test is not None
    assert any(output.strip() for c in report.candidates for output in c.outputs.values())
    from prompt_lsp.evaluation.examples import load_examples

    examples = load_examples(parse(path.read_text()), path).examples
    test_messages = [e.inputs["message"] for e in examples if e.id in set(report.split.test)]
    has_test = [any(m in p for m in test_messages) for p in prompts]
    first = has_test.index(True)
    assert all(has_test[first:]) and not any(has_test[:first])
    assert report.verdict().startswith(("improvement:", "no reliable improvement found"))
    with HistoryStore(tmp_path / ".prompt-lsp" / "history.sqlite3") as store:
        kept = store.candidates_for_file("route-ticket/route-ticket.prompt")
    assert {c.version for c in kept} == {c.version for c in report.candidates}
