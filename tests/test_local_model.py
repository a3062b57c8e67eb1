"""The embedded llama.cpp provider: prompt rendering, model resolution, and a real run."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import llama_available

from prompt_lsp.evaluation import session
from prompt_lsp.evaluation.local_model import (
    LOCAL_EXTRA_MESSAGE,
    LocalModelError,
    engine_for,
    merged_stops,
    render_plain_prompt,
    resolve_gguf,
)
from prompt_lsp.evaluation.session import EvalOptions, EvalSetupError, evaluate_prompt


def test_render_plain_prompt_labels_roles_and_cues_the_answer() -> None:
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert render_plain_prompt(chat) == "System: Be brief.\n\nUser: Hi\n\nAssistant:"


def test_render_plain_prompt_continues_a_cue_or_an_assistant_prefix() -> None:
    few_shot = [
        {"role": "user", "content": "Review: great\nSentiment: positive\nReview: bad\nSentiment:"}
    ]
    assert render_plain_prompt(few_shot).endswith("Review: bad\nSentiment:")
    prefill = [
        {"role": "user", "content": "Name a colour"},
        {"role": "assistant", "content": "Red"},
    ]
    assert render_plain_prompt(prefill) == "User: Name a colour\n\nAssistant: Red"


def test_merged_stops_keep_the_callers_first() -> None:
    assert merged_stops(["\n"]) == ["\n", "\nUser:", "\nSystem:", "\n\n\n"]
    assert merged_stops("END") == ["END", "\nUser:", "\nSystem:", "\n\n\n"]
    assert merged_stops(None) == ["\nUser:", "\nSystem:", "\n\n\n"]


def test_resolve_gguf_errors(tmp_path: Path) -> None:
    with pytest.raises(LocalModelError, match="GGUF file not found"):
        resolve_gguf(str(tmp_path / "absent.gguf"))
    with pytest.raises(LocalModelError, match="unknown local model"):
        resolve_gguf("llama-3")


PROMPT = """
---
model: {model}
config:
  temperature: 0
  max_tokens: 8
  stop: ["\\n"]
examples:
  - {{id: fr, input: {{country: France}}, expected: Paris}}
  - {{id: jp, input: {{country: Japan}}, expected: Tokyo}}
metrics:
  - {{name: contains, ignore_case: true}}
---
user:
The capital of Italy is Rome.
The capital of {{{{ country }}}} is
"""


async def test_missing_local_extra_is_one_clear_line(
    write_prompt: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "local_extra_installed", lambda: False)
    path = write_prompt(PROMPT.format(model="local/gemma-3-270m"))
    with pytest.raises(EvalSetupError) as caught:
        await evaluate_prompt(path, path.read_text(), EvalOptions())
    assert str(caught.value) == LOCAL_EXTRA_MESSAGE


async def test_missing_gguf_file_is_a_setup_error(write_prompt: Callable[..., Path]) -> None:
    if not llama_available():
        pytest.skip("llama_cpp is not installed")
    path = write_prompt(PROMPT.format(model="local/models/absent.gguf"))
    with pytest.raises(EvalSetupError, match="GGUF file not found: .*models/absent.gguf"):
        await evaluate_prompt(path, path.read_text(), EvalOptions())


@pytest.mark.local_model
async def test_real_local_model_evaluates_two_examples(
    write_prompt: Callable[..., Path],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not llama_available():
        pytest.skip("llama_cpp is not installed (pip install 'prompt-lsp[local]')")
    path = write_prompt(PROMPT.format(model="local/gemma-3-270m"))
    report = await evaluate_prompt(path, path.read_text(), EvalOptions())
    assert report.status == "ok" and report.n_ok == 2, [r.error for r in report.results]
    assert report.model == "local/gemma-3-270m"
    for result in report.results:
        assert isinstance(result.output, str)
        assert result.prompt_tokens > 0 and 0 < result.completion_tokens <= 8
        assert result.cost == 0.0 and result.latency_s is not None
    assert report.aggregates["contains"] is not None
    assert capfd.readouterr().out == ""  # llama.cpp never writes to stdout (the LSP stream)

    with monkeypatch.context() as patch:  # a fully cached run needs no model at all
        patch.setattr(session, "local_extra_installed", lambda: False)
        again = await evaluate_prompt(path, path.read_text(), EvalOptions())
    assert all(r.cached for r in again.results) and again.calls == 0

    # local/<relative path>.gguf runs a GGUF file next to the prompt
    embedded = resolve_gguf("gemma-3-270m")
    (path.parent / "weights.gguf").symlink_to(embedded)
    other = write_prompt(PROMPT.format(model="local/weights.gguf"), name="other.prompt")
    # the symlink leads out of the workspace: refused until the user allows the folder
    with pytest.raises(session.EvalSetupError, match="outside the workspace"):
        await evaluate_prompt(other, other.read_text(), EvalOptions(example_ids=["fr"]))
    monkeypatch.setenv("PROMPT_LSP_ALLOWED_PATHS", str(embedded.resolve().parent))
    report = await evaluate_prompt(other, other.read_text(), EvalOptions(example_ids=["fr"]))
    assert report.n_ok == 1 and report.model == f"local/{embedded.resolve()}"


@pytest.mark.local_model
def test_an_abort_stops_a_generation_at_the_next_token() -> None:
    if not llama_available():
        pytest.skip("llama_cpp is not installed (pip install 'prompt-lsp[local]')")
    engine = engine_for(resolve_gguf("gemma-3-270m"))
    abort = threading.Event()
    abort.set()
    generation = engine.generate("Count: one, two, three,", {"max_tokens": 200}, abort)
    assert generation.completion_tokens <= 2


# ---------------------------------------------------------------------------- the worker process


def _needs_llama() -> None:
    if not llama_available():
        pytest.skip("llama_cpp is not installed (pip install 'prompt-lsp[local]')")


@pytest.mark.local_model
def test_the_worker_generates_streams_progress_and_cancels_by_message() -> None:
    import os
    import time

    from prompt_lsp.evaluation.local_worker import LocalWorker

    _needs_llama()
    worker = LocalWorker()
    try:
        gguf = resolve_gguf("gemma-3-270m")
        first = worker.generate(gguf, "Count: one, two, three,", {"max_tokens": 6})
        assert first.completion_tokens > 0 and first.text
        assert worker.pid != os.getpid() and worker.running()

        abort, seen = threading.Event(), []

        def progress(count: int) -> None:
            seen.append(count)
            if count >= 4:
                abort.set()  # cancel mid-generation, from the parent

        started = time.perf_counter()
        numbers = "Numbers: " + ", ".join(str(n) for n in range(1, 30)) + ","
        long = worker.generate(
            gguf, numbers, {"max_tokens": 400, "temperature": 0}, abort, progress
        )
        assert seen and seen == sorted(seen)  # progress streamed in order
        assert 4 <= long.completion_tokens < 30  # stopped soon after the cancel message
        assert time.perf_counter() - started < 60
        # the same process serves the next generation (the model stays loaded)
        pid = worker.pid
        assert worker.generate(gguf, "Hello", {"max_tokens": 2}).completion_tokens > 0
        assert worker.pid == pid
    finally:
        worker.stop()
    assert not worker.running()


@pytest.mark.local_model
def test_the_worker_runs_at_lower_priority_and_dies_with_its_parent(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    _needs_llama()
    script = (
        "import os, sys\n"
        "from prompt_lsp.evaluation.local_worker import shared_worker\n"
        "from prompt_lsp.evaluation.local_model import resolve_gguf\n"
        "worker = shared_worker()\n"
        "worker.generate(resolve_gguf('gemma-3-270m'), 'Hi', {'max_tokens': 1})\n"
        "print(worker.pid, flush=True)\n"
        "sys.stdin.read()\n"  # wait to be killed
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        worker_pid = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert os.getpriority(os.PRIO_PROCESS, worker_pid) > os.getpriority(
            os.PRIO_PROCESS, parent.pid
        )
        parent.send_signal(signal.SIGKILL)  # no atexit, no cleanup: the worker must go anyway
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(worker_pid):
            time.sleep(0.1)
        assert not _alive(worker_pid)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    import os

    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.exists(f"/proc/{pid}")


def test_a_worker_that_cannot_load_the_model_is_one_clear_error(tmp_path: Path) -> None:
    from prompt_lsp.evaluation.local_worker import LocalWorker

    _needs_llama()
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"not a gguf file")
    worker = LocalWorker()
    try:
        with pytest.raises(LocalModelError) as error:
            worker.generate(bogus, "Hi", {"max_tokens": 1})
        assert "broken.gguf" in str(error.value)
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("setting", "idle", "load", "threads"),
    [
        (None, 1.9, 5.0, 2),  # an idle 2-core machine: both cores (the load average lags)
        (None, 1.5, 0.1, 1),  # half a core busy right now: one thread
        (None, 0.2, 0.1, 1),  # loaded: one thread (two would wait for each other)
        (None, None, 0.1, 2),  # no /proc/stat: the load average says
        (None, None, 1.2, 1),
        ("3", 0.0, 7.5, 3),  # the user's setting wins
        ("many", 2.0, 0.1, 2),  # a setting that is no number is ignored
    ],
)
def test_the_embedded_model_takes_the_idle_cores_unless_told(
    monkeypatch: pytest.MonkeyPatch,
    setting: str | None,
    idle: float | None,
    load: float,
    threads: int,
) -> None:
    from prompt_lsp.evaluation import local_model

    if setting is None:
        monkeypatch.delenv(local_model.THREADS_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(local_model.THREADS_VARIABLE, setting)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert local_model.thread_count(idle) == threads


def test_idle_cores_sees_a_busy_core_at_once() -> None:
    import subprocess
    import sys

    from prompt_lsp.evaluation.local_model import CoreMeter

    cores = os.cpu_count() or 1
    spinning = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.2)
        meter = CoreMeter()
        time.sleep(0.3)
        busy = meter.reading()
    finally:
        spinning.kill()
        spinning.wait()
    assert busy is not None and 0 <= busy <= cores - 0.6


def test_cores_our_own_decoding_keeps_busy_count_as_available(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prompt_lsp.evaluation import local_model

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.delenv(local_model.THREADS_VARIABLE, raising=False)
    # (idle, ours, all) ticks: over 200 ticks of 2 cores, no idle time but ours is 190
    readings = iter([(0, 0, 0), (0, 190, 200), (0, 290, 400), (90, 390, 600)])
    monkeypatch.setattr(local_model, "_cpu_ticks", lambda: next(readings))
    meter = local_model.CoreMeter()
    assert meter.reading() == pytest.approx(1.9)  # we use both cores: keep two threads
    assert local_model.thread_count(meter.reading()) == 1  # another process took one core
    assert local_model.thread_count(meter.reading()) == 2  # it finished: both again


def test_the_language_server_keeps_a_core_for_typing() -> None:
    import subprocess
    import sys

    script = (
        "import os, prompt_lsp.server as s\n"
        "s.create_server = lambda: (_ for _ in ()).throw(SystemExit(0))\n"
        "try:\n    s.run_server()\nexcept SystemExit:\n    pass\n"
        "print(os.environ.get('PROMPT_LSP_LOCAL_THREADS'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PROMPT_LSP_LOCAL_THREADS"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "1", done.stderr


# ---------------------------------------------------------------------------- decoding together

_WORD_SETS = (
    ("apple", "banana", "cherry"),
    ("violin", "trumpet", "drum"),
    ("Oslo", "Lima", "Cairo"),
    ("red", "green", "blue"),
    ("seven", "eleven", "twelve"),
)


def _repeat_prompt(words: tuple[str, ...]) -> str:
    line = " ".join(words)
    return f"Repeat the words exactly.\nWords: {line}\nRepeat: {line}\nWords: {line}\nRepeat:"


@pytest.mark.local_model
def test_generations_decoded_together_each_answer_their_own_prompt() -> None:
    """Every sequence of a batch reads its own prompt and its own cache: each copies its own
    words, none another's, and stops where it was told to."""
    _needs_llama()
    engine = engine_for(resolve_gguf("gemma-3-270m"))
    assert engine.sequences > 1
    params = {"max_tokens": 10, "temperature": 0, "stop": ["\n"]}
    futures = [engine.submit(_repeat_prompt(words), params) for words in _WORD_SETS]
    generations = [future.result(60) for future in futures]
    for words, generation in zip(_WORD_SETS, generations, strict=True):
        assert generation.text.split() == list(words), generation.text
        others = {w for ws in _WORD_SETS if ws != words for w in ws}
        assert not others & set(generation.text.split())
        assert "\n" not in generation.text and generation.finish_reason == "stop"
        assert generation.completion_tokens <= 10
    # more requests than sequences wait for a free one, and are answered the same way
    many = [engine.submit(_repeat_prompt(w), params) for w in _WORD_SETS * 3]
    assert [f.result(120).text.split() for f in many] == [list(w) for w in _WORD_SETS * 3]


@pytest.mark.local_model
def test_aborting_one_generation_leaves_the_others_whole() -> None:
    _needs_llama()
    engine = engine_for(resolve_gguf("gemma-3-270m"))
    numbers = "Numbers: " + ", ".join(str(n) for n in range(1, 30)) + ","
    params = {"max_tokens": 40, "temperature": 0}
    abort = threading.Event()
    seen: list[int] = []

    def stop_early(count: int) -> None:
        seen.append(count)
        if count >= 3:
            abort.set()

    stopped = engine.submit(numbers, params, abort, stop_early)
    whole = engine.submit(numbers, params)
    assert 3 <= stopped.result(60).completion_tokens <= 5
    finished = whole.result(60)
    assert finished.completion_tokens == 40 and finished.finish_reason == "length"
    assert seen == sorted(seen)


@pytest.mark.local_model
def test_a_prompt_longer_than_the_context_is_one_clear_error() -> None:
    _needs_llama()
    engine = engine_for(resolve_gguf("gemma-3-270m"))
    with pytest.raises(LocalModelError, match="exceed context window of 2048"):
        engine.submit("word " * 3000, {"max_tokens": 4})


def test_a_local_run_sends_as_many_calls_as_the_model_decodes_together(
    write_prompt: Callable[..., Path],
) -> None:
    from prompt_lsp.evaluation.local_batch import MAX_SEQUENCES
    from prompt_lsp.evaluation.local_model import decoded_together

    if decoded_together("gemma-3-270m") == 1:
        pytest.skip("the embedded model is not installed")
    path = write_prompt(PROMPT.format(model="local/gemma-3-270m"))
    text = path.read_text()
    plan = session.plan_run(path, text, EvalOptions())
    assert plan.concurrency == MAX_SEQUENCES
    # a call shares each step with the others: slower alone, so a longer default timeout
    assert plan.timeout_s == session.LOCAL_TIMEOUT_S > session.DEFAULT_TIMEOUT_S
    assert session.plan_run(path, text, EvalOptions(timeout=5)).timeout_s == 5
    assert session.plan_run(path, text, EvalOptions(concurrency=1)).concurrency == 1
    many = EvalOptions(concurrency=MAX_SEQUENCES * 4)  # more would only wait in the worker
    assert session.plan_run(path, text, many).concurrency == MAX_SEQUENCES
    big = path.parent / "big.gguf"
    with big.open("wb") as handle:  # a 3 GiB model (sparse): one generation at a time
        handle.truncate(3 << 30)
    big_prompt = write_prompt(PROMPT.format(model="local/big.gguf"), name="big.prompt")
    assert session.plan_run(big_prompt, big_prompt.read_text(), EvalOptions()).concurrency == 1


@pytest.mark.local_model
def test_a_local_run_never_imports_litellm(tmp_path: Path) -> None:
    """litellm takes seconds to import; an embedded-model run does not need it."""
    import subprocess
    import sys

    _needs_llama()
    (tmp_path / ".git").mkdir()
    prompt = tmp_path / "capital.prompt"
    prompt.write_text(PROMPT.format(model="local/gemma-3-270m").lstrip(), encoding="utf-8")
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from prompt_lsp.evaluation.session import EvalOptions, evaluate_prompt\n"
        f"path = Path({str(prompt)!r})\n"
        "report = asyncio.run(evaluate_prompt(path, path.read_text(), EvalOptions()))\n"
        "print(report.n_ok, 'litellm' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.split() == ["2", "False"], done.stderr[-2000:]


@pytest.mark.local_model
def test_an_idle_worker_gives_its_memory_back_and_the_next_generation_starts_another() -> None:
    import time

    from prompt_lsp.evaluation.local_worker import LocalWorker

    _needs_llama()
    worker = LocalWorker(idle_s=0.5)
    gguf = resolve_gguf("gemma-3-270m")
    try:
        assert worker.generate(gguf, "Hello", {"max_tokens": 2}).completion_tokens > 0
        first = worker.pid
        deadline = time.monotonic() + 10
        while first is not None and _alive(first) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not worker.running() and first is not None and not _alive(first)
        assert worker.generate(gguf, "Hello", {"max_tokens": 2}).completion_tokens > 0
        assert worker.pid not in (None, first)
    finally:
        worker.stop()


@pytest.mark.local_model
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temperature": "hot"}, "invalid sampling setting"),
        ({"seed": [1]}, "invalid sampling setting"),
        ({"max_tokens": "many"}, "max_tokens must be a number"),
    ],
)
def test_a_bad_sampling_value_is_one_clear_error_and_the_model_keeps_answering(
    params: dict[str, object], message: str
) -> None:
    _needs_llama()
    engine = engine_for(resolve_gguf("gemma-3-270m"))
    with pytest.raises(LocalModelError, match=message):
        engine.submit("Hi", params)
    assert engine.generate("Hi", {"max_tokens": 2}).completion_tokens > 0
