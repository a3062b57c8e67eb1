"""Every built-in metric against hand-computed values."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from prompt_lsp.evaluation.metrics import (
    MetricScore,
    MetricSpec,
    extract_code,
    judge_score,
    metric_spec,
    parse_judge_reply,
    rouge_fmeasures,
    run_code_tests,
    score_all,
    score_all_async,
)
from prompt_lsp.format import parse


def parse_metric_specs(raw: object) -> list[MetricSpec]:
    """The specs a run uses for `metrics: <raw>` written in a prompt's front matter."""
    doc = parse(f"---\nmetrics: {json.dumps(raw)}\n---\nHi\n")
    return [metric_spec(m) for m in doc.settings.metrics]


def metric_problems(raw: object) -> list[str]:
    doc = parse(f"---\nmetrics: {json.dumps(raw)}\n---\nHi\n")
    return [p.message for p in doc.settings.errors]


def score(name: str, output: str, expected: object, **options: object) -> MetricScore:
    return score_all([MetricSpec(name, options=dict(options))], output, expected)[name]


# ---------------------------------------------------------------------------- specs


def test_parse_metric_specs_accepts_names_and_mappings() -> None:
    specs = parse_metric_specs(
        ["rougeL", {"name": "rouge1", "threshold": 0.3}, {"exact_match": {"ignore_case": True}}]
    )
    assert [s.name for s in specs] == ["rougeL", "rouge1", "exact_match"]
    assert specs[1].threshold == 0.3
    assert specs[2].options == {"ignore_case": True}
    assert parse_metric_specs("json_valid")[0].name == "json_valid"
    assert parse_metric_specs(None) == []


def test_parse_metric_specs_rejects_unknown_names_with_a_suggestion() -> None:
    assert any("Did you mean 'rougeL'" in m for m in metric_problems(["rouge-l"]))
    assert any("threshold" in m for m in metric_problems([{"name": "rougeL", "threshold": "high"}]))


def test_duplicate_metrics_get_distinct_keys() -> None:
    specs = parse_metric_specs(["exact_match", {"name": "exact_match", "ignore_case": True}])
    assert [s.key for s in specs] == ["exact_match", "exact_match#2"]
    scores = score_all(specs, "Paris", "paris")
    assert scores["exact_match"].score == 0.0
    assert scores["exact_match#2"].score == 1.0


def test_threshold_pass() -> None:
    spec = MetricSpec("rouge1", threshold=0.5)
    assert spec.passes(0.5) and not spec.passes(0.49) and not spec.passes(None)
    assert MetricSpec("rouge1").passes(None)


# ---------------------------------------------------------------------------- string metrics


def test_exact_match_strips_and_normalizes_whitespace_by_default() -> None:
    assert score("exact_match", "  Paris \n", "Paris").score == 1.0
    assert score("exact_match", "New   York", "New York").score == 1.0
    assert score("exact_match", "New   York", "New York", normalize_whitespace=False).score == 0.0
    assert score("exact_match", "paris", "Paris").score == 0.0
    assert score("exact_match", "paris", "Paris", ignore_case=True).score == 1.0
    assert score("exact_match", "42", 42).score == 1.0  # non-string expected compared as JSON
    missing = score("exact_match", "x", None)
    assert missing.score is None and "expected" in (missing.reason or "")


def test_contains() -> None:
    assert score("contains", "The answer is Paris.", "Paris").score == 1.0
    assert score("contains", "The answer is paris.", "Paris").score == 0.0
    assert score("contains", "The answer is paris.", "Paris", ignore_case=True).score == 1.0


def test_regex_uses_the_pattern_option_or_expected() -> None:
    assert score("regex", "order #1234 shipped", None, pattern=r"#\d{4}\b").score == 1.0
    assert score("regex", "order shipped", r"#\d+").score == 0.0
    assert score("regex", "2024-01-05", r"^\d{4}-\d{2}-\d{2}$").score == 1.0
    bad = score("regex", "x", "(unclosed")
    assert bad.score is None and "invalid pattern" in (bad.reason or "")
    assert score("regex", "x", None).score is None


def test_json_valid() -> None:
    assert score("json_valid", ' {"a": [1, 2]} ', None).score == 1.0
    assert score("json_valid", "42", None).score == 1.0
    invalid = score("json_valid", "{'a': 1}", None)
    assert invalid.score == 0.0 and "not JSON" in (invalid.reason or "")
    assert score("json_valid", "", None).score == 0.0


# ---------------------------------------------------------------------------- ROUGE


def test_rouge_matches_hand_computed_f1() -> None:
    reference, output = "the cat sat on the mat", "the cat lay on the mat"
    # unigrams: the×2, cat, on, mat overlap = 5 of 6 on both sides -> F1 = 5/6
    assert score("rouge1", output, reference).score == pytest.approx(5 / 6)
    # bigrams: the-cat, on-the, the-mat overlap = 3 of 5 on both sides -> F1 = 3/5
    assert score("rouge2", output, reference).score == pytest.approx(3 / 5)
    # LCS: the cat on the mat = 5 of 6 -> F1 = 5/6
    assert score("rougeL", output, reference).score == pytest.approx(5 / 6)


@pytest.mark.parametrize("rouge_type", ["rouge1", "rouge2", "rougeL", "rougeLsum"])
def test_rouge_is_identical_to_rouge_score(rouge_type: str) -> None:
    pairs = [
        ("The council approved the new ferry service.", "The council approved a ferry."),
        ("Running dogs ran quickly.\nThey were happy.", "A dog runs quick.\nHappy dogs!"),
        ("Nothing in common", "zebra quantum"),
        ("", "some output"),
    ]
    direct = rouge_scorer.RougeScorer([rouge_type], use_stemmer=True)
    for reference, output in pairs:
        expected = direct.score(reference, output)[rouge_type].fmeasure
        assert score(rouge_type, output, reference).score == expected


def test_rouge_metrics_together_equal_each_alone() -> None:
    specs = parse_metric_specs(["rougeL", "rouge1", "rouge2", "rougeLsum"])
    together = score_all(specs, "a quick brown fox", "the quick brown fox jumps")
    for spec in specs:
        assert together[spec.key] == score(
            spec.name, "a quick brown fox", "the quick brown fox jumps"
        )


def test_rouge_scoring_rate_is_far_above_call_rate() -> None:
    """1,000 fresh pairs must score faster than 1,000 calls at 100 ms / 16 concurrent (6.25 s)."""
    rouge_fmeasures.cache_clear()
    reference = (
        "The town will launch an electric ferry across its harbour next spring, officials said."
    )
    started = time.perf_counter()
    for i in range(1000):
        score("rougeL", f"Electric ferry number {i} will cross the harbour next spring.", reference)
    assert time.perf_counter() - started < 6.25


# ---------------------------------------------------------------------------- code_tests


def test_extract_code_prefers_the_python_fence() -> None:
    reply = "Here:\n```text\nnot code\n```\n```python\ndef f():\n    return 1\n```\nDone."
    assert extract_code(reply) == "def f():\n    return 1\n"
    assert extract_code("```\nx = 1\n```") == "x = 1\n"
    assert extract_code("```python\ndef g():\n    return 2") == "def g():\n    return 2"
    assert extract_code("def h(): pass") == "def h(): pass"


def test_code_tests_pass_and_fail() -> None:
    reply = "```python\ndef add(a, b):\n    return a + b\n```"
    assert run_code_tests(reply, "assert add(2, 3) == 5", 10.0) == MetricScore(1.0)
    wrong = run_code_tests("def add(a, b):\n    return a - b", "assert add(2, 3) == 5", 10.0)
    assert wrong.score == 0.0
    assert "AssertionError" in (wrong.reason or "") and "add(2, 3)" in (wrong.reason or "")
    broken = run_code_tests("def add(a, b)\n    return a", "assert add(1, 1) == 2", 10.0)
    assert broken.score == 0.0 and "SyntaxError" in (broken.reason or "")


def test_code_tests_times_out_an_endless_loop() -> None:
    started = time.perf_counter()
    result = run_code_tests("def f():\n    while True:\n        pass", "f()", 2.0)
    assert result.score == 0.0
    assert result.reason == "timed out after 2 s"
    assert time.perf_counter() - started < 5


def test_code_tests_stops_unbounded_allocation() -> None:
    reply = "def grow():\n    blocks = []\n    while True:\n        blocks.append(bytearray(50_000_000))"
    result = run_code_tests(reply, "grow()", 10.0)
    assert result.score == 0.0
    assert "memory limit" in (result.reason or "")


def test_code_tests_sees_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    tests = "import os\nassert 'OPENAI_API_KEY' not in os.environ, 'leaked'"
    assert run_code_tests("x = 1", tests, 10.0).score == 1.0


async def test_score_all_async_runs_code_tests_off_the_loop() -> None:
    specs = [MetricSpec("code_tests"), MetricSpec("contains")]
    scores = await score_all_async(specs, "def one():\n    return 1", "assert one() == 1")
    assert scores["code_tests"].score == 1.0
    assert scores["contains"].score == 0.0


# ---------------------------------------------------------------------------- llm_judge


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"score": 0.8, "reason": "mostly right"}', 0.8),
        ('```json\n{"score": 1, "reason": "ok"}\n```', 1.0),
        ('Sure! {"score": "0.25", "reason": "weak"} Hope that helps.', 0.25),
        ("7/10", 0.7),
        ("Score: 4 out of 5", 0.8),
        ("85%", 0.85),
        ("0.6", 0.6),
        ('{"score": 8, "reason": "on a 10 scale"}', 0.8),
    ],
)
def test_parse_judge_reply(reply: str, expected: float) -> None:
    assert parse_judge_reply(reply).score == pytest.approx(expected)


def test_parse_judge_reply_keeps_the_reason_and_rejects_garbage() -> None:
    assert parse_judge_reply('{"score": 0.5, "reason": "half"}').reason == "half"
    garbage = parse_judge_reply("I cannot grade this.")
    assert garbage.score is None and "could not read a score" in (garbage.reason or "")
    assert parse_judge_reply('{"score": "n/a"}').score is None
    assert parse_judge_reply("score 4000").score is None


async def test_llm_judge_asks_the_judge_with_the_rubric() -> None:
    seen: list[tuple[str, str]] = []

    async def judge(model: str, messages: list[dict[str, str]]) -> str:
        seen.append((model, messages[-1]["content"]))
        return '{"score": 0.9, "reason": "good"}'

    spec = MetricSpec("llm_judge", options={"rubric": "Is it polite?"})
    result = await judge_score(spec, "Thank you!", None, None, judge, "openai/gpt-4o-mini")
    assert result == MetricScore(0.9, "good")
    assert seen[0][0] == "openai/gpt-4o-mini"
    assert "Is it polite?" in seen[0][1] and "Thank you!" in seen[0][1]

    other = MetricSpec("llm_judge", options={"judge_model": "anthropic/claude-3-5-haiku"})
    await judge_score(other, "x", "y", None, judge, "openai/gpt-4o-mini")
    assert seen[1][0] == "anthropic/claude-3-5-haiku"


async def test_llm_judge_failure_is_a_none_score() -> None:
    async def judge(model: str, messages: list[dict[str, str]]) -> str:
        raise RuntimeError("judge is down\ntraceback...")

    result = await judge_score(MetricSpec("llm_judge"), "x", None, None, judge, "m/x")
    assert result.score is None and result.reason == "judge call failed: judge is down"


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_parse_judge_reply_never_raises_and_stays_in_range(reply: str) -> None:
    result = parse_judge_reply(reply)
    assert result.score is None or 0.0 <= result.score <= 1.0
    assert result.score is not None or result.reason


@given(st.text(max_size=80), st.text(max_size=80))
@settings(max_examples=200, deadline=None)
def test_string_metrics_are_total(output: str, expected: str) -> None:
    specs = parse_metric_specs(["exact_match", "contains", "rougeL", "json_valid", "regex"])
    for value in score_all(specs, output, expected).values():
        assert value.score is None or 0.0 <= value.score <= 1.0


def test_rouge_scores_equal_rouge_score_defaults_without_importing_all_of_nltk() -> None:
    """The memoized stemming tokenizer and the deferred nltk import change no score."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import json, sys
        from prompt_lsp.evaluation.metrics import rouge_fmeasures
        types = ("rouge1", "rouge2", "rougeL", "rougeLsum")
        pairs = [
            ("the cats are running quickly\\nand jumping", "a cat runs quick and jumped"),
            ("Wexmoor Bay will replace its diesel ferries", "Wexmoor Bay replaces ferries"),
            ("Ünïcode wörds generalization", "generalize unicode"),
            ("", "nothing to compare"),
        ]
        ours = [rouge_fmeasures(types, a, b) for a, b in pairs]
        light = "scipy" not in sys.modules
        from rouge_score import rouge_scorer
        reference = rouge_scorer.RougeScorer(list(types), use_stemmer=True)
        theirs = [tuple(reference.score(a, b)[t].fmeasure for t in types) for a, b in pairs]
        print(json.dumps({"same": ours == theirs, "light": light, "stemmed": ours[0][0] > 0.5}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"same": True, "light": True, "stemmed": True}
