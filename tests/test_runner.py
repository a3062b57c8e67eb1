"""The run engine and session against the scripted litellm provider."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ScriptedProvider, Step

from prompt_lsp.evaluation.providers import (
    ModelReply,
    describe_error,
    retry_after_seconds,
)
from prompt_lsp.evaluation.runner import RetryPolicy
from prompt_lsp.evaluation.session import (
    EvalOptions,
    EvalSetupError,
    ProgressEvent,
    evaluate_prompt,
    last_run_for_text,
    load_last_report,
)
from prompt_lsp.format.secrets import scrub_secrets
from prompt_lsp.history.store import HistoryStore

FAST_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.01)

PROMPT = """
---
model: scripted/test-model
config:
  temperature: 0
  maxOutputTokens: 20
examples: cases.jsonl
metrics:
  - exact_match
  - {name: contains, threshold: 0.5}
eval:
  timeout: 2
---
system:
Answer briefly.
user:
Question {{ q }}
"""


def cases(count: int, expected: Callable[[int], str] = lambda i: f"echo: Question {i}") -> str:
    return "\n".join(
        json.dumps({"id": f"c{i}", "input": {"q": str(i)}, "expected": expected(i)})
        for i in range(count)
    )


def options(**overrides: object) -> EvalOptions:
    values: dict[str, object] = {"retry": FAST_RETRY}
    values.update(overrides)
    return EvalOptions(**values)  # type: ignore[arg-type]


async def evaluate(path: Path, **overrides: object):  # noqa: ANN201
    return await evaluate_prompt(path, path.read_text(), options(**overrides))


def history_of(path: Path) -> HistoryStore:
    return HistoryStore(path.parent / ".prompt-lsp" / "history.sqlite3")


# ---------------------------------------------------------------------------- basics


async def test_run_scores_records_and_reports_progress(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(3, lambda i: "echo: Question 0" if i == 0 else "x"))
    events: list[ProgressEvent] = []
    report = await evaluate_prompt(path, path.read_text(), options(), on_progress=events.append)

    assert report.status == "ok" and report.total == 3 and report.n_ok == 3
    assert scripted.call_count == 3
    assert report.aggregates == {"exact_match": pytest.approx(1 / 3), "contains": 1 / 3}
    assert report.failed_thresholds == ["contains"]
    assert report.model == "scripted/test-model"
    assert [r.id for r in report.results] == ["c0", "c1", "c2"]
    first = report.results[0]
    assert first.output == "echo: Question 0" and first.scores["exact_match"] == 1.0
    assert first.prompt_tokens == 7 and first.completion_tokens == 3
    assert first.latency_s is not None and first.latency_s >= 0
    assert report.prompt_tokens == 21 and report.cost == 0.0
    assert events[0].done == 0 and events[-1].done == 3 and events[-1].total == 3
    assert events[-1].eta_s == 0.0

    with history_of(path) as history:
        run = history.run(report.run_id)
        assert run is not None and run.status == "ok" and run.file == "test.prompt"
        assert history.count_results(report.run_id) == 3
    assert (path.parent / ".prompt-lsp" / ".gitignore").read_text() == "*\n"


async def test_config_aliases_reach_the_provider(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(1))
    await evaluate(path)
    assert scripted.params[0]["max_tokens"] == 20
    assert scripted.params[0]["temperature"] == 0


async def test_cache_hit_makes_no_call_and_no_cache_bypasses_it(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(4))
    first = await evaluate(path)
    assert scripted.call_count == 4 and not any(r.cached for r in first.results)

    again = await evaluate(path)
    assert scripted.call_count == 4  # no new call
    assert all(r.cached for r in again.results) and again.calls == 0
    assert again.aggregates == first.aggregates
    assert [r.latency_s for r in again.results] == [r.latency_s for r in first.results]

    await evaluate(path, use_cache=False)
    assert scripted.call_count == 8


async def test_errors_are_never_cached(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(1))
    scripted.script(lambda prompt, attempt: Step("raise"))
    failed = await evaluate(path, retry=RetryPolicy(max_attempts=1))
    assert failed.status == "failed" and failed.n_failed == 1
    scripted.script(lambda prompt, attempt: Step(text="fine"))
    ok = await evaluate(path)
    assert ok.results[0].output == "fine" and not ok.results[0].cached


# ---------------------------------------------------------------------------- retries


async def test_rate_limit_then_success_honours_retry_after(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(1))
    scripted.script(
        lambda prompt, attempt: (
            Step("rate_limit", retry_after=0.3) if attempt <= 2 else Step(text="ok")
        )
    )
    report = await evaluate(path)
    finished = time.monotonic()
    assert report.results[0].output == "ok" and report.results[0].error is None
    assert scripted.call_count == 3 and report.retries == 2 and report.calls == 3
    gaps = [b - a for a, b in zip(scripted.call_times, scripted.call_times[1:], strict=False)]
    assert all(gap >= 0.29 for gap in gaps)  # backoff alone would be ~1 ms
    assert all(gap < 3 for gap in gaps)
    # the latency is the successful attempt's only, not the waits before it
    latency = report.results[0].latency_s
    assert latency is not None and latency <= finished - scripted.call_times[2] + 0.2


async def test_server_errors_and_provider_timeouts_are_retried(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(2))

    def behaviour(prompt: str, attempt: int) -> Step:
        if attempt == 1:
            return Step("server_error" if prompt.endswith("0") else "timeout")
        return Step(text="recovered")

    scripted.script(behaviour)
    report = await evaluate(path)
    assert [r.output for r in report.results] == ["recovered", "recovered"]
    assert report.retries == 2 and scripted.call_count == 4


async def test_a_hanging_call_times_out_and_the_run_goes_on(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(3))
    scripted.script(
        lambda prompt, attempt: Step("hang") if prompt.endswith("1") else Step(text="quick")
    )
    started = time.perf_counter()
    report = await evaluate(path, timeout=0.2, retry=RetryPolicy(max_attempts=2, base_delay_s=0.01))
    assert time.perf_counter() - started < 5
    errors = {r.id: r.error for r in report.results}
    assert errors == {"c0": None, "c1": "timed out after 0.2 s", "c2": None}
    assert report.status == "ok" and report.n_failed == 1 and report.n_ok == 2
    assert scripted.attempts["Question 1"] == 2
    assert report.results[1].scores == {}  # a failed call is not scored


async def test_a_raising_provider_is_one_line_and_the_run_goes_on(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(2))
    scripted.script(
        lambda prompt, attempt: Step("raise") if prompt.endswith("0") else Step(text="fine")
    )
    report = await evaluate(path)
    error = report.results[0].error
    assert error is not None and "scripted provider bug" in error and "\n" not in error
    assert report.results[1].output == "fine"
    assert report.n_failed == 1 and report.status == "ok"


async def test_every_call_failing_is_status_failed(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(2))
    scripted.script(lambda prompt, attempt: Step("raise"))
    report = await evaluate(path, retry=RetryPolicy(max_attempts=1))
    assert report.status == "failed" and report.n_ok == 0 and report.aggregates["contains"] is None


async def test_garbage_and_empty_replies_are_scored_not_errors(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    text = PROMPT.replace("  - exact_match\n", "  - exact_match\n  - json_valid\n")
    path = write_prompt(text, examples=cases(2))
    scripted.script(
        lambda prompt, attempt: (
            Step(text="") if prompt.endswith("0") else Step(text="\x00{]]garbage")
        )
    )
    report = await evaluate(path)
    assert [r.output for r in report.results] == ["", "\x00{]]garbage"]
    assert all(r.error is None for r in report.results)
    assert all(
        r.scores == {"exact_match": 0.0, "json_valid": 0.0, "contains": 0.0} for r in report.results
    )


# ---------------------------------------------------------------------------- concurrency


async def test_fixed_latency_runs_with_bounded_concurrency(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(20))
    scripted.script(lambda prompt, attempt: Step(text="x", delay=0.1))
    started = time.perf_counter()
    await evaluate(path, concurrency=5)
    elapsed = time.perf_counter() - started
    assert scripted.max_in_flight == 5
    assert 0.4 <= elapsed < 2.0  # 20 calls × 0.1 s / 5 = 0.4 s


async def test_repeat_reports_mean_and_stdev(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(2))
    # repeat 1 answers right for both examples, repeat 2 for one, repeat 3 for none
    answers = {1: True, 2: None, 3: False}

    def behaviour(prompt: str, attempt: int) -> Step:
        right = answers[attempt] if answers[attempt] is not None else prompt.endswith("0")
        return Step(text=f"echo: {prompt}" if right else "wrong")

    scripted.script(behaviour)
    report = await evaluate(path, repeat=3, concurrency=1)
    assert report.total == 6 and len(report.results) == 6 and scripted.call_count == 6
    assert [(r.id, r.repeat) for r in report.results][:3] == [("c0", 0), ("c0", 1), ("c0", 2)]
    # per-repeat means of exact_match: 1.0, 0.5, 0.0 -> mean 0.5, sample stdev 0.5
    assert report.aggregates["exact_match"] == pytest.approx(0.5)
    assert report.stdev["exact_match"] == pytest.approx(statistics.stdev([1.0, 0.5, 0.0]))


# ---------------------------------------------------------------------------- cancellation


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.parametrize("count", [30, 300], ids=["rendered-first", "rendered-while-running"])
async def test_cancel_event_keeps_finished_results(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path], count: int
) -> None:
    path = write_prompt(PROMPT, examples=cases(count))
    scripted.script(lambda prompt, attempt: Step(text="x", delay=0.05))
    cancel = asyncio.Event()

    def on_progress(event: ProgressEvent) -> None:
        if event.done >= 5:
            cancel.set()

    report = await evaluate_prompt(
        path, path.read_text(), options(concurrency=2), on_progress=on_progress, cancel=cancel
    )
    assert report.status == "cancelled"
    assert 5 <= len(report.results) < 30 and report.total == count
    with history_of(path) as history:
        run = history.run(report.run_id)
        assert run is not None and run.status == "cancelled" and run.total == count
        assert history.count_results(report.run_id) == len(report.results) == run.n_ok
    assert load_last_report(path, path.read_text()) is None  # a cancelled run is not "the" score


# litellm builds the provider coroutine in a worker thread; a cancel can drop it unawaited
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
async def test_task_cancel_records_the_partial_run_and_reraises(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(30))
    scripted.script(lambda prompt, attempt: Step(text="x", delay=0.05))
    finished: list[ProgressEvent] = []
    task = asyncio.create_task(
        evaluate_prompt(path, path.read_text(), options(concurrency=2), on_progress=finished.append)
    )
    while not finished or finished[-1].done < 4:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with history_of(path) as history:
        (run,) = history.runs_for_file("test.prompt")
        assert run.status == "cancelled"
        assert history.count_results(run.id) == run.n_ok + run.n_failed
        assert 4 <= history.count_results(run.id) < 30
    await asyncio.sleep(0.1)
    assert scripted.in_flight == 0  # nothing left running


# ---------------------------------------------------------------------------- setup errors


async def test_missing_api_key_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, write_prompt: Callable[..., Path]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = write_prompt(
        PROMPT.replace("scripted/test-model", "openai/gpt-4o-mini"), examples=cases(1)
    )
    with pytest.raises(EvalSetupError) as caught:
        await evaluate(path)
    assert str(caught.value) == "OPENAI_API_KEY is not set: export it, or pick another `model:`"


def test_missing_key_errors_from_a_call_are_described_the_same_way() -> None:
    class AuthenticationError(Exception):
        pass

    error = AuthenticationError("litellm.AuthenticationError: Missing Anthropic API Key - ...")
    assert describe_error(error, "anthropic/claude-3-5-haiku") == (
        "ANTHROPIC_API_KEY is not set: export it, or pick another `model:`"
    )
    other = RuntimeError("InternalServerError: OpenAIException - Missing credentials. Please set")
    assert describe_error(other, "openai/gpt-4o-mini").startswith("OPENAI_API_KEY is not set")


async def test_setup_errors(write_prompt: Callable[..., Path]) -> None:
    no_examples = write_prompt(PROMPT.replace("examples: cases.jsonl\n", ""), name="a.prompt")
    with pytest.raises(EvalSetupError, match="no examples"):
        await evaluate(no_examples)

    undefined = write_prompt(
        PROMPT.replace("{{ q }}", "{{ q }} {{ missing }}"), name="b.prompt", examples=cases(2)
    )
    with pytest.raises(EvalSetupError, match=r"cannot render example 1 \(id c0\): .*missing"):
        await evaluate(undefined)

    unknown = write_prompt(PROMPT.replace("- exact_match", "- exactmatch"), name="c.prompt")
    with pytest.raises(EvalSetupError, match="Unknown metric .exactmatch.*exact_match"):
        await evaluate(unknown)

    with pytest.raises(EvalSetupError, match="no example with id nope"):
        await evaluate(write_prompt(PROMPT, name="d.prompt"), example_ids=["nope"])


async def test_example_ids_select_examples(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(5))
    report = await evaluate(path, example_ids=["c3", "c1"])
    assert [r.id for r in report.results] == ["c1", "c3"] and scripted.call_count == 2


# ---------------------------------------------------------------------------- secrets


async def test_secrets_in_config_never_reach_the_stores(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    text = PROMPT.replace("  temperature: 0\n", "  temperature: 0\n  api_key: sk-very-secret-123\n")
    path = write_prompt(text, examples=cases(2))
    report = await evaluate(path)
    assert report.n_ok == 2
    for file in (path.parent / ".prompt-lsp").iterdir():
        if file.is_file() and "sqlite" in file.name and file.stat().st_size:
            assert b"sk-very-secret-123" not in file.read_bytes()
    assert "sk-very-secret-123" not in json.dumps(report.to_json())


def test_scrub_secrets() -> None:
    config = {"temperature": 0, "api_key": "x", "extra_headers": {"Authorization": "Bearer y"}}
    assert scrub_secrets(config) == {"temperature": 0, "extra_headers": {}}


def test_retry_after_parsing() -> None:
    import httpx

    class Limited(Exception):
        def __init__(self, headers: dict[str, str]) -> None:
            self.response = httpx.Response(429, headers=headers)

    assert retry_after_seconds(Limited({"retry-after": "2"})) == 2.0
    assert retry_after_seconds(Limited({"retry-after-ms": "150"})) == 0.15
    assert retry_after_seconds(Limited({})) is None
    assert RetryPolicy().delay(1, 3.0) == 3.0
    assert 0.75 <= RetryPolicy(base_delay_s=1.0).delay(1) <= 1.25
    assert RetryPolicy(base_delay_s=1.0, max_delay_s=5).delay(10) <= 5 * 1.25


# ---------------------------------------------------------------------------- judge and history


async def test_llm_judge_through_the_run(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    text = PROMPT.replace(
        "  - exact_match\n",
        "  - {name: llm_judge, rubric: 'Is it short?', judge_model: scripted/judge}\n",
    )
    path = write_prompt(text, examples=cases(2))

    def behaviour(prompt: str, attempt: int) -> Step:
        if "RUBRIC:\nIs it short?" in prompt:
            return Step(text='{"score": 0.75, "reason": "short enough"}')
        return Step(text="answer")

    scripted.script(behaviour)
    report = await evaluate(path)
    assert report.aggregates["llm_judge"] == 0.75
    assert report.results[0].reasons["llm_judge"] == "short enough"
    assert scripted.call_count == 4  # two answers, two judgements
    await evaluate(path)
    assert scripted.call_count == 4  # judgements are cached too


async def test_load_last_report_and_comparison_with_the_previous_version(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(2))
    first = await evaluate(path)
    assert first.comparison is None
    assert first.aggregates == {"exact_match": 1.0, "contains": 1.0}

    loaded = load_last_report(path, path.read_text())
    assert loaded is not None and loaded.run_id == first.run_id
    summary = last_run_for_text(path, path.read_text())
    assert summary is not None and summary.aggregates == first.aggregates
    assert loaded.aggregates == first.aggregates and len(loaded.results) == 2
    assert [m.key for m in loaded.metrics] == ["exact_match", "contains"]
    calls = scripted.call_count

    edited = path.read_text().replace("Question {{ q }}", "Q {{ q }}")
    path.write_text(edited)
    second = await evaluate(path)
    assert scripted.call_count == calls + 2
    comparison = second.comparison
    assert comparison is not None and comparison.previous_version == first.version
    assert comparison.deltas == {"exact_match": -1.0, "contains": -1.0}
    assert {c.example_id for c in comparison.regressed} == {"c0", "c1"}
    assert "-Question {{ q }}" in comparison.diff and "+Q {{ q }}" in comparison.diff
    assert load_last_report(path, "some other text") is None


async def test_malformed_example_rows_are_skipped_with_a_warning(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(2) + "\n{not json\n")
    report = await evaluate(path)
    assert report.n_ok == 2
    assert report.warnings[0].startswith("skipped 1 malformed example(s) in cases.jsonl (line 3:")
    assert "invalid JSON" in report.warnings[0]


async def test_unknown_model_is_a_setup_error(write_prompt: Callable[..., Path]) -> None:
    path = write_prompt(
        PROMPT.replace("scripted/test-model", "notaprovider-model"), examples=cases(1)
    )
    with pytest.raises(
        EvalSetupError, match="litellm does not know the model `notaprovider-model`"
    ):
        await evaluate(path)


async def test_history_never_shows_a_key_written_in_the_prompt(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(
        PROMPT.replace("  temperature: 0\n", "  api_key: sk-abcdef123456\n"), examples=cases(1)
    )
    await evaluate(path)
    path.write_text(path.read_text().replace("Question", "Query"))
    await evaluate(path)
    report = load_last_report(path, path.read_text())
    assert report is not None and report.comparison is not None
    assert "sk-abcdef123456" not in report.comparison.diff
    with history_of(path) as history:
        stored = history.version_text("test.prompt", report.version)
    assert stored is not None and "api_key: <redacted>" in stored


async def test_a_custom_transport_needs_no_litellm(write_prompt: Callable[..., Path]) -> None:
    calls: list[tuple[str, dict[str, object]]] = []

    async def transport(
        model: str, messages: list[dict[str, str]], config: dict[str, object], timeout_s: float
    ) -> ModelReply:
        calls.append((model, config))
        if len(calls) == 1:
            raise TimeoutError
        return ModelReply(f"echo: {messages[-1]['content']}", 5, 2, 0.001)

    path = write_prompt(PROMPT.replace("scripted/test-model", "direct/model"), examples=cases(1))
    report = await evaluate(path, transport=transport)
    assert report.n_ok == 1 and report.retries == 1 and report.cost == 0.001
    assert calls[0] == ("direct/model", {"temperature": 0, "max_tokens": 20})


async def test_a_failing_progress_callback_does_not_end_the_run(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    path = write_prompt(PROMPT, examples=cases(3))

    def broken(event: ProgressEvent) -> None:
        raise RuntimeError("display went away")

    report = await evaluate_prompt(path, path.read_text(), options(), on_progress=broken)
    assert report.status == "ok" and report.n_ok == 3
