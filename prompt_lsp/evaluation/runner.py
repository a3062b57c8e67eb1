"""The run engine: call the model once per work item with bounded concurrency, retries,
timeouts and cancellation; score each reply; keep what finished.

It knows nothing about `.prompt` files (see `session` for that): it gets rendered work items,
a transport (normally `providers.RunTransport`), an optional response cache and the
metrics. A failed item is recorded with its error and the run goes on. Cancelling — the `cancel`
event, or cancelling the task — stops new calls, drops the ones in flight and returns the
finished results with `cancelled=True`; the caller records them and, for a task cancel,
re-raises `CancelledError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prompt_lsp.evaluation.cache import CachedReply, ResponseCache, cache_key
from prompt_lsp.evaluation.metrics import MetricScore, MetricSpec, score_all_async
from prompt_lsp.evaluation.providers import (
    ModelReply,
    Transport,
    describe_error,
    is_retryable,
    retry_after_seconds,
)
from prompt_lsp.evaluation.results import ExampleResult
from prompt_lsp.format.secrets import redact_values, secret_values

DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT_S = 60.0
CACHE_BATCH = 200  # replies per cache transaction


class JudgeError(Exception):
    """llm_judge's model call failed (the message is one line, as for any call)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a `Retry-After` header wins when the error has one."""

    max_attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    jitter: float = 0.25  # the delay varies by ± this fraction
    max_retry_after_s: float = 120.0  # a server asking for longer is not waited for in full

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        base = min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s)
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


@dataclass(frozen=True)
class WorkItem:
    """One model call to make: an example (× repeat) with its rendered messages."""

    example: Any  # format.examples.Example (index, id, inputs, expected)
    repeat: int
    messages: list[dict[str, str]]
    key: str  # response cache key
    render_error: str | None = None  # the example could not be rendered: no call, a failure


@dataclass
class RunSettings:
    model: str
    config: dict[str, Any]  # litellm kwargs
    metrics: list[MetricSpec]
    concurrency: int = DEFAULT_CONCURRENCY
    timeout_s: float = DEFAULT_TIMEOUT_S
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    use_cache: bool = True
    judge_model: str | None = None  # default judge for llm_judge (the prompt's model)


@dataclass
class RunOutcome:
    results: list[ExampleResult]  # finished items, in work order
    cancelled: bool = False
    task_cancelled: bool = False  # the task itself was cancelled: re-raise after recording
    calls: int = 0  # transport calls made, retries included
    retries: int = 0


class Runner:
    """Runs work items; one instance per run (it counts calls and retries)."""

    def __init__(
        self,
        settings: RunSettings,
        transport: Transport,
        cache: ResponseCache | None = None,
        cached: dict[str, CachedReply] | None = None,
        on_result: Callable[[ExampleResult], None] | None = None,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.cache = cache if settings.use_cache else None
        self.cached = dict(cached or {}) if settings.use_cache else {}
        self.on_result = on_result
        self.calls = 0
        self.retries = 0
        self._unsaved: list[tuple[str, str, CachedReply]] = []
        self._saving: set[asyncio.Task[None]] = set()

    async def run(
        self,
        items: list[WorkItem],
        cancel: asyncio.Event | None = None,
        more: AsyncIterator[list[WorkItem]] | None = None,
    ) -> RunOutcome:
        """Run `items`, then the batches `more` yields (rendered while the first calls run),
        in that order."""
        finished: dict[int, ExampleResult] = {}
        queue: asyncio.Queue[tuple[int, WorkItem] | None] = asyncio.Queue()
        for position, item in enumerate(items):
            queue.put_nowait((position, item))
        count = self.settings.concurrency if more else min(self.settings.concurrency, len(items))
        workers = [asyncio.create_task(self._worker(queue, finished)) for _ in range(max(1, count))]
        if more is None:
            _end_queue(queue, len(workers))
        else:
            workers.append(asyncio.create_task(_feed(queue, more, len(items), len(workers))))
        everything = asyncio.gather(*workers)
        outcome = RunOutcome(results=[])
        try:
            outcome.cancelled = await self._wait(everything, cancel)
        except asyncio.CancelledError:
            outcome.cancelled = outcome.task_cancelled = True
        finally:
            await _stop(workers)
            _consume(everything)
            await self._save_all()
        outcome.results = [finished[p] for p in sorted(finished)]
        outcome.calls, outcome.retries = self.calls, self.retries
        return outcome

    async def _wait(self, everything: asyncio.Future[Any], cancel: asyncio.Event | None) -> bool:
        """Wait for the workers; True when the cancel event fired first."""
        if cancel is None:
            await everything
            return False
        watcher = asyncio.create_task(cancel.wait())
        try:
            done, _ = await asyncio.wait({everything, watcher}, return_when="FIRST_COMPLETED")
        finally:
            watcher.cancel()
        if everything in done:
            everything.result()  # a bug in a worker should surface, not vanish
            return False
        return True

    async def _worker(
        self,
        queue: asyncio.Queue[tuple[int, WorkItem] | None],
        finished: dict[int, ExampleResult],
    ) -> None:
        while True:
            entry = await queue.get()
            if entry is None:
                return
            position, item = entry
            result = await self.process(item)
            finished[position] = result
            if self.on_result is not None:
                self.on_result(result)

    async def process(self, item: WorkItem) -> ExampleResult:
        """Call (or read from the cache) and score one item; errors become the result's."""
        example = item.example
        result = ExampleResult(
            index=example.index,
            id=example.id,
            inputs=dict(example.inputs),
            expected=example.expected,
            output=None,
            repeat=item.repeat,
        )
        if item.render_error is not None:
            result.error = item.render_error
            return result
        hit = self.cached.get(item.key)
        if hit is not None:
            reply = ModelReply(hit.output, hit.prompt_tokens, hit.completion_tokens, 0.0)
            result.cached, result.latency_s = True, hit.latency_s
        else:
            try:
                reply, result.latency_s = await self._call(item.messages)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                result.error = f"timed out after {self.settings.timeout_s:g} s"
                return result
            except Exception as err:
                own_key = bool(self.settings.config.get("api_key"))
                error = describe_error(err, self.settings.model, own_key)
                result.error = redact_values(error, secret_values(self.settings.config))
                return result
            self._remember(item.key, reply, result.latency_s)
        result.output = reply.text
        result.prompt_tokens, result.completion_tokens = (
            reply.prompt_tokens,
            reply.completion_tokens,
        )
        result.cost = reply.cost
        try:
            scores = await score_all_async(
                self.settings.metrics,
                reply.text,
                example.expected,
                example,
                judge=self._judge,
                default_judge_model=self.settings.judge_model or self.settings.model,
            )
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a scoring bug must not end the run: the output is kept
            reason = f"scoring failed: {type(err).__name__}: {err}"
            scores = {m.key: MetricScore(None, reason) for m in self.settings.metrics}
        _store_scores(result, scores)
        return result

    def _remember(self, key: str, reply: ModelReply, latency_s: float, model: str = "") -> None:
        """Queue a reply for the cache; written in batches off the event loop."""
        if self.cache is None:
            return
        cached = CachedReply(
            reply.text, reply.prompt_tokens, reply.completion_tokens, reply.cost, latency_s
        )
        self._unsaved.append((key, model or self.settings.model, cached))
        if len(self._unsaved) >= CACHE_BATCH:
            batch, self._unsaved = self._unsaved, []
            task = asyncio.create_task(asyncio.to_thread(self.cache.put_many, batch))
            self._saving.add(task)
            task.add_done_callback(self._saving.discard)

    async def _save_all(self) -> None:
        """Write what is queued and wait for the batches being written (also on cancel: the
        finished replies stay cached). Shielded: a cancel must not lose a batch."""
        if self.cache is None:
            return
        batch, self._unsaved = self._unsaved, []
        pending = list(self._saving)
        if batch:
            pending.append(asyncio.create_task(asyncio.to_thread(self.cache.put_many, batch)))
        if pending:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(asyncio.gather(*pending, return_exceptions=True))

    async def _call(
        self, messages: list[dict[str, str]], model: str | None = None
    ) -> tuple[ModelReply, float]:
        """One model call with retries; returns the reply and the successful attempt's latency."""
        settings = self.settings
        model = model or settings.model
        config = settings.config if model == settings.model else {}
        for attempt in range(1, settings.retry.max_attempts + 1):
            started = time.perf_counter()
            self.calls += 1
            try:
                reply = await _with_timeout(
                    self.transport(model, messages, config, settings.timeout_s),
                    settings.timeout_s,
                )
                return reply, time.perf_counter() - started
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if attempt >= settings.retry.max_attempts or not is_retryable(err):
                    raise
                self.retries += 1
                await asyncio.sleep(settings.retry.delay(attempt, retry_after_seconds(err)))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _judge(self, model: str, messages: list[dict[str, str]]) -> str:
        """llm_judge's model call: retried like any call, and cached."""
        key = cache_key(model, messages, {}, 0)
        hit = self.cached.get(key)
        if hit is None and self.cache is not None:
            hit = self.cache.get(key)
        if hit is not None:
            return hit.output
        try:
            reply, latency = await self._call(messages, model)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            raise JudgeError(describe_error(err, model)) from None
        if self.cache is not None:
            judged = ModelReply(reply.text, reply.prompt_tokens, reply.completion_tokens)
            self._remember(key, judged, latency, model)
            self.cached[key] = CachedReply(reply.text, judged.prompt_tokens, 0, 0.0, latency)
        return reply.text


async def _with_timeout(call: Awaitable[ModelReply], seconds: float) -> ModelReply:
    """`asyncio.timeout` where available: unlike `wait_for` (Python < 3.12) it does not wrap
    every call in an extra task, which shows at hundreds of calls per second."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await call
    return await asyncio.wait_for(call, seconds)


def _store_scores(result: ExampleResult, scores: dict[str, MetricScore]) -> None:
    for key, score in scores.items():
        result.scores[key] = score.score
        if score.reason:
            result.reasons[key] = score.reason


def _end_queue(queue: asyncio.Queue[tuple[int, WorkItem] | None], workers: int) -> None:
    for _ in range(workers):
        queue.put_nowait(None)  # one end mark per worker


async def _feed(
    queue: asyncio.Queue[tuple[int, WorkItem] | None],
    batches: AsyncIterator[list[WorkItem]],
    position: int,
    workers: int,
) -> None:
    """Queue each batch as it comes, numbered after the items queued first."""
    try:
        async for batch in batches:
            for item in batch:
                queue.put_nowait((position, item))
                position += 1
    finally:
        _end_queue(queue, workers)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a finished gather's outcome, so asyncio does not log it as never retrieved."""
    if future.done() and not future.cancelled():
        future.exception()


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------------------- aggregates


def aggregate(
    results: list[ExampleResult], metrics: list[MetricSpec]
) -> tuple[dict[str, float | None], dict[str, float]]:
    """(mean per metric, standard deviation per metric across repeats).

    The mean is over every scored call (failed calls and None scores are left out). The
    standard deviation is that of the per-repeat means, so it is reported only when
    `eval.repeat` > 1 produced at least two repeats with scores."""
    means: dict[str, float | None] = {}
    stdev: dict[str, float] = {}
    for spec in metrics:
        values = [v for r in results if r.ok and (v := r.scores.get(spec.key)) is not None]
        means[spec.key] = statistics.fmean(values) if values else None
        by_repeat: dict[int, list[float]] = {}
        for r in results:
            value = r.scores.get(spec.key)
            if r.ok and value is not None:
                by_repeat.setdefault(r.repeat, []).append(value)
        if len(by_repeat) >= 2:
            stdev[spec.key] = statistics.stdev(statistics.fmean(v) for v in by_repeat.values())
    return means, stdev
