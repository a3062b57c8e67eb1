"""The search: score candidate prompts on the validation split, keep the best, and judge the
winner against the original on the untouched test split.

The search is greedy by stage (config, demonstrations, special tokens, instructions, then
reflective rewriting when a capable model is given): each stage's variants of the current best
are scored on validation and the best one is kept only when it beats the current one. The test
split is not rendered into any call until the winner is fixed. Every call goes through one
budget: the run stops before a candidate whose uncached calls would not fit, keeping enough for
the final test runs. Scored candidates go to the history as candidates of the file.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_lsp.evaluation.cache import ResponseCache
from prompt_lsp.evaluation.metrics import as_text, prepare_metrics
from prompt_lsp.evaluation.optimize.edits import GENERATORS, Variant, all_variants
from prompt_lsp.evaluation.optimize.split import DEFAULT_SPLIT, Split, split_examples
from prompt_lsp.evaluation.options import EvalOptions, EvalSetupError
from prompt_lsp.evaluation.providers import (
    ModelReply,
    Transport,
    is_local_model,
    litellm_transport,
)
from prompt_lsp.evaluation.results import CandidateRecord
from prompt_lsp.evaluation.runner import Runner
from prompt_lsp.evaluation.session import (
    RunPlan,
    plan_run,
    preflight,
    stored_text,
)
from prompt_lsp.evaluation.stats import PairedStats, paired_comparison
from prompt_lsp.format.examples import Example
from prompt_lsp.format.text import text_version
from prompt_lsp.history.paths import CACHE_FILE, HISTORY_FILE, STATE_DIR_NAME, ensure_state_dir
from prompt_lsp.history.store import HistoryStore, new_run_id

logger = logging.getLogger(__name__)
DEFAULT_BUDGET = 300
REFLECTION = "reflection"
PERFECT = (1.0, 1.0)  # every validation example right (metrics score 0..1)


class BudgetExhausted(Exception):
    """The run's call budget is spent (never retried)."""


@dataclass
class OptimizeSettings:
    generators: tuple[str, ...] = GENERATORS
    split: tuple[float, float, float] = DEFAULT_SPLIT
    seed: int = 0
    budget: int | None = DEFAULT_BUDGET  # model calls, retries and judge calls included
    max_cost: float | None = None  # USD
    reflection_model: str | None = None  # for "reflection": default the file's own model
    rounds: int = 2  # passes over the generators
    test_top: int = 2  # candidates (besides the original) scored on the test split


@dataclass
class Candidate:
    id: str  # the first 8 hex digits of the text's sha256
    text: str
    change: str  # every change from the original, in order
    generator: str
    step: str = ""  # this candidate's own change on top of its parent
    parent: str | None = None
    demo_ids: tuple[str, ...] = ()
    validation: float | None = None
    near: float = 0.0  # share of validation outputs whose first line holds the expected answer
    validation_scores: dict[str, float] = field(default_factory=dict)
    test: float | None = None
    test_scores: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # validation outputs, for reflection
    error: str | None = None

    @property
    def version(self) -> str:
        return text_version(self.text)

    @property
    def rank(self) -> tuple[float, float]:
        """Validation score, then `near` to break ties: with exact_match, a prompt whose
        answers are right but followed by more text ties the original at 0 and still shows
        the way (a newline stop then makes them exact)."""
        return (self.validation or 0.0, self.near)


@dataclass
class OptimizeProgress:
    phase: str  # "estimate" | "validation" | "test" | "done"
    calls: int  # model calls made so far
    budget: int | None
    scored: int  # candidates scored
    message: str


@dataclass
class OptimizeReport:
    path: Path
    file: str
    model: str
    metric: str
    split: Split
    baseline: Candidate
    candidates: list[Candidate]  # every candidate scored on validation, the baseline first
    winner: Candidate | None  # None when nothing beat the original on validation
    stats: PairedStats | None  # winner vs original on the test split
    estimate: int  # calls the run expected to make at most
    calls: int
    budget: int | None
    cost: float
    duration_s: float
    optimization_id: str
    cancelled: bool = False
    stopped: str | None = None  # why the search ended early
    warnings: list[str] = field(default_factory=list)

    @property
    def reliable(self) -> bool:
        """The winner's held-out gain is more than noise."""
        return (
            self.winner is not None
            and self.stats is not None
            and self.stats.significant
            and (self.stats.mean_delta or 0.0) > 0
        )

    def leaderboard(self) -> list[Candidate]:
        scored = [c for c in self.candidates if c.validation is not None]
        return sorted(scored, key=lambda c: (-c.rank[0], -c.rank[1], c.generator == "baseline"))

    def diff(self) -> str:
        if self.winner is None:
            return ""
        name = self.path.name
        return "".join(
            difflib.unified_diff(
                self.baseline.text.splitlines(keepends=True),
                self.winner.text.splitlines(keepends=True),
                f"a/{name}",
                f"b/{name}",
            )
        )

    def verdict(self) -> str:
        """One sentence: what the held-out examples say."""
        if self.cancelled:
            return "cancelled: the candidates scored so far are kept in the history"
        if self.winner is None:
            return "no reliable improvement found: no candidate beat the original on validation"
        stats = self.stats
        if stats is None or self.winner.test is None or stats.mean_delta is None:
            return (
                "no reliable improvement found: the budget ended before the test split was scored"
            )
        gain = f"{stats.mean_delta:+.3f} {self.metric}"
        interval = f"95% CI [{stats.ci_low or 0.0:+.3f}, {stats.ci_high or 0.0:+.3f}], n={stats.n}"
        if self.reliable:
            return f"improvement: {gain} on held-out examples ({interval})"
        return f"no reliable improvement found: {gain} on held-out examples is within noise ({interval})"

    def to_json(self) -> dict[str, Any]:
        def candidate(c: Candidate) -> dict[str, Any]:
            return {
                "id": c.id,
                "change": c.change,
                "step": c.step,
                "generator": c.generator,
                "parent": c.parent,
                "validation": c.validation,
                "test": c.test,
                "version": c.version,
            }

        return {
            "file": self.file,
            "model": self.model,
            "metric": self.metric,
            "split": {
                "train": list(self.split.train),
                "validation": list(self.split.validation),
                "test": list(self.split.test),
                "cross_validate": self.split.cross_validate,
            },
            "baseline": candidate(self.baseline),
            "winner": candidate(self.winner) if self.winner else None,
            "winner_text": self.winner.text if self.winner else None,
            "reliable": self.reliable,
            "verdict": self.verdict(),
            "stats": self.stats.as_dict() if self.stats else None,
            "leaderboard": [candidate(c) for c in self.leaderboard()],
            "diff": self.diff(),
            "calls": self.calls,
            "estimate": self.estimate,
            "budget": self.budget,
            "cost": self.cost,
            "duration_s": self.duration_s,
            "cancelled": self.cancelled,
            "stopped": self.stopped,
            "optimization_id": self.optimization_id,
            "warnings": self.warnings,
        }


class CallBudget:
    """Counts every transport call and refuses the one past the limit."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    @property
    def remaining(self) -> float:
        return float("inf") if self.limit is None else self.limit - self.used

    def guard(self, transport: Transport) -> Transport:
        async def call(
            model: str, messages: list[dict[str, str]], config: dict[str, Any], timeout: float
        ) -> ModelReply:
            if self.limit is not None and self.used >= self.limit:
                raise BudgetExhausted(f"the budget of {self.limit} model calls is spent")
            self.used += 1
            return await transport(model, messages, config, timeout)

        return call


class Optimizer:
    """One optimisation of one prompt file (see `optimize_prompt`)."""

    def __init__(
        self,
        path: Path,
        text: str,
        options: EvalOptions,
        settings: OptimizeSettings,
        on_progress: Callable[[OptimizeProgress], None] | None,
        cancel: asyncio.Event | None,
    ) -> None:
        self.path, self.options, self.settings = path, options, settings
        self.on_progress, self.cancel = on_progress, cancel
        self.plan: RunPlan = plan_run(path, text, options)
        if not self.plan.metrics:
            raise EvalSetupError("optimize needs a metric: add `metrics:` to the front matter")
        self.metric = self.plan.metrics[0].key
        try:
            self.split = split_examples(self.plan.examples, settings.split, settings.seed)
        except ValueError as err:
            raise EvalSetupError(str(err)) from err
        by_id = {e.id: e for e in self.plan.examples}
        self.demo_pool: list[Example] = [by_id[i] for i in self.split.demo_pool]
        self.budget = CallBudget(settings.budget)
        self.transport = self.budget.guard(options.transport or litellm_transport)
        self.candidates: dict[str, Candidate] = {}
        self.cost = 0.0
        self.cancelled = False
        self.stopped: str | None = None
        self.prepared = False
        self.optimization_id = new_run_id()
        self.started_at = time.time()
        self.base_version = self.plan.version
        self.warnings = list(self.plan.warnings)
        if self.split.cross_validate:
            self.warnings.append(
                "few examples: each candidate is validated on the train and validation examples "
                "it does not use as demonstrations"
            )

    # ---------------------------------------------------------------- calls and scores

    @property
    def test_reserve(self) -> int:
        """Calls kept for the test split: the original, the winner and the runners-up."""
        return (1 + self.settings.test_top) * len(self.split.test) * self.plan.repeat

    def estimate(self, first_stage: int) -> int:
        """The most calls the run plans to make: the original and each planned candidate on
        validation, and the finalists on test."""
        per_candidate = len(self.split.validation_for(())) * self.plan.repeat
        planned = 1 + first_stage * self.settings.rounds + 2 * len(self.settings.generators)
        total = planned * per_candidate + self.test_reserve
        limit = self.settings.budget
        return total if limit is None else min(total, limit)

    def _cost_estimate(self, calls: int) -> str:
        """≈ USD for `calls` calls, from the model's price and the original's prompt length
        (demonstrations make candidates longer: counted as half as long again)."""
        from prompt_lsp.catalog.models import lookup_model
        from prompt_lsp.catalog.tokenizer import count_tokens

        info = lookup_model(self.plan.model)
        if info is None or info.input_cost_per_token is None:
            return "" if is_local_model(self.plan.model) else ", cost unknown"
        sample = [i for i in self.plan.items if i.messages][:5]
        if not sample or not (info.input_cost_per_token or info.output_cost_per_token):
            return ", $0"
        prompt = sum(
            count_tokens("\n".join(m["content"] for m in i.messages), self.plan.model)
            for i in sample
        ) / len(sample)
        answer = self.plan.config.get("max_tokens")
        answer = answer if isinstance(answer, int) else 256
        per_call = 1.5 * prompt * info.input_cost_per_token + answer * (
            info.output_cost_per_token or 0.0
        )
        return f", ≈ ${calls * per_call:.4f}"

    async def score(
        self, candidate: Candidate, ids: tuple[str, ...], reserve: int
    ) -> tuple[dict[str, float], float] | None:
        """Per-example headline scores and the `near` share on `ids` (mean over repeats; a
        failed call scores 0), or None when the candidate cannot be scored within the budget,
        was cancelled or fails to render."""
        try:
            plan = plan_run(self.path, candidate.text, self.options)
        except EvalSetupError as err:
            candidate.error = str(err)
            return None
        wanted = set(ids)
        items = [item for item in plan.items if item.example.id in wanted]
        state_dir = ensure_state_dir(plan.root / STATE_DIR_NAME)
        cache = ResponseCache(state_dir / CACHE_FILE) if plan.use_cache else None
        try:
            hits = cache.get_many(i.key for i in items if i.render_error is None) if cache else {}
            uncached = sum(1 for i in items if i.render_error is None and i.key not in hits)
            if uncached > self.budget.remaining - reserve:
                self.stopped = f"the budget of {self.budget.limit} model calls is spent"
                return None
            per_call = self.cost / self.budget.used if self.budget.used else 0.0
            limit = self.settings.max_cost
            if limit is not None and self.cost + per_call * (uncached + reserve) > limit:
                self.stopped = f"the cost limit of ${self.settings.max_cost:g} is reached"
                return None
            if uncached and not self.prepared:
                await asyncio.to_thread(prepare_metrics, plan.metrics)
                await preflight(
                    plan, True, self.options.transport is None, self.options.allowed_hosts or []
                )
                self.prepared = True
            runner = Runner(
                plan.run_settings(self.options.retry),
                self.transport,
                cache,
                hits,
            )
            outcome = await runner.run(items, self.cancel)
        finally:
            if cache is not None:
                cache.close()
        self.cost += sum(r.cost for r in outcome.results if not r.cached)
        if outcome.cancelled:
            self.cancelled = True
            if outcome.task_cancelled:
                raise asyncio.CancelledError
            return None
        if any(r.error and "budget of" in r.error for r in outcome.results):
            self.stopped = f"the budget of {self.budget.limit} model calls is spent"
            return None
        per_example: dict[str, list[float]] = {}
        near = []
        for result in outcome.results:
            value = result.scores.get(self.metric) if result.ok else None
            per_example.setdefault(result.id, []).append(float(value or 0.0))
            near.append(_first_line_holds(result.output, result.expected))
            if result.output is not None:
                candidate.outputs[result.id] = result.output
        scores = {i: statistics.fmean(v) for i, v in per_example.items()}
        return scores, statistics.fmean(near) if near else 0.0

    async def validate(self, candidate: Candidate) -> bool:
        """Score `candidate` on validation; False when it could not be scored."""
        if self.should_stop():
            return False
        ids = self.split.validation_for(candidate.demo_ids)
        scored = await self.score(candidate, ids, self.test_reserve)
        if scored is None:
            return False
        scores, candidate.near = scored
        candidate.validation_scores = scores
        candidate.validation = statistics.fmean(scores.values()) if scores else 0.0
        self.candidates.setdefault(candidate.id, candidate)
        self._record(candidate)
        near = f" (first line right: {candidate.near:.2f})" if candidate.near else ""
        self._progress("validation", f"{candidate.step}: {candidate.validation:.3f}{near}")
        return True

    def should_stop(self) -> bool:
        return (
            self.cancelled or self.stopped is not None or bool(self.cancel and self.cancel.is_set())
        )

    # ---------------------------------------------------------------- the search

    def new_candidate(self, variant: Variant, parent: Candidate) -> Candidate:
        demo_ids = variant.demo_ids if variant.generator == "demonstrations" else parent.demo_ids
        return Candidate(
            id=text_version(variant.text)[:8],
            text=variant.text,
            change=variant.change
            if parent.generator == "baseline"
            else f"{parent.change}; {variant.change}",
            generator=variant.generator,
            step=variant.change,
            parent=parent.id,
            demo_ids=demo_ids,
        )

    async def run(self) -> OptimizeReport:
        baseline = Candidate(
            text_version(self.plan.text)[:8],
            self.plan.text,
            "the original prompt",
            "baseline",
            step="the original prompt",
        )
        first_stage = sum(
            len(
                list(
                    all_variants(
                        g, baseline.text, self.demo_pool, self.plan.model, self.settings.seed
                    )
                )
            )
            for g in self.settings.generators
            if g != REFLECTION
        )
        need = self.test_reserve + len(self.split.validation_for(())) * self.plan.repeat
        if need > self.budget.remaining:
            raise EvalSetupError(
                f"--budget is too small: this file needs at least {need} model calls "
                "(the original on validation, and the finalists on test)"
            )
        estimate = self.estimate(first_stage)
        self._progress(
            "estimate",
            f"up to {estimate} model calls{self._cost_estimate(estimate)} "
            "(fewer with cached replies)",
        )
        started = time.perf_counter()
        best = baseline
        if await self.validate(baseline):
            best = await self._search(baseline)
        elif not self.should_stop():
            raise EvalSetupError(baseline.error or "the original prompt could not be scored")
        winner = best if best is not baseline else None
        self.cancelled = self.cancelled or bool(self.cancel and self.cancel.is_set())
        stats = None
        if not self.should_stop() or (self.stopped and not self.cancelled):
            stats = await self._test(baseline, winner)
        report = OptimizeReport(
            path=self.path,
            file=self.plan.file,
            model=self.plan.model,
            metric=self.metric,
            split=self.split,
            baseline=baseline,
            candidates=list(self.candidates.values()),
            winner=winner,
            stats=stats,
            estimate=estimate,
            calls=self.budget.used,
            budget=self.budget.limit,
            cost=self.cost,
            duration_s=time.perf_counter() - started,
            optimization_id=self.optimization_id,
            cancelled=self.cancelled,
            stopped=self.stopped,
            warnings=self.warnings,
        )
        self._progress("done", report.verdict())
        return report

    async def _search(self, baseline: Candidate) -> Candidate:
        best = baseline
        for round_ in range(self.settings.rounds):
            improved = False
            for generator in self.settings.generators:
                if self.should_stop() or best.rank >= PERFECT:
                    return best  # nothing left to find on validation
                if generator == REFLECTION:
                    stage_best = await self._reflect(best)
                else:
                    stage_best = await self._stage(generator, best, self.settings.seed + round_)
                if stage_best is not None and stage_best.rank > best.rank:
                    best, improved = stage_best, True
            if not improved:
                break
        return best

    async def _stage(self, generator: str, parent: Candidate, seed: int) -> Candidate | None:
        stage_best: Candidate | None = None
        for variant in all_variants(generator, parent.text, self.demo_pool, self.plan.model, seed):
            candidate = self.new_candidate(variant, parent)
            known = self.candidates.get(candidate.id)
            if known is None and not await self.validate(candidate):
                continue
            candidate = known or candidate
            if stage_best is None or candidate.rank > stage_best.rank:
                stage_best = candidate
            if stage_best.rank >= PERFECT:
                break
        return stage_best

    async def _reflect(self, parent: Candidate) -> Candidate | None:
        model = self.settings.reflection_model or self.plan.model
        from prompt_lsp.evaluation.optimize.reflect import reflect

        return await reflect(self, parent, model)

    async def _test(self, baseline: Candidate, winner: Candidate | None) -> PairedStats | None:
        """Score the original, the winner and the next best on the test split: the first time
        any test example is rendered into a call."""
        finalists = [baseline] + ([winner] if winner else [])
        others = [c for c in self._ranked() if c not in finalists]
        finalists += others[: max(0, self.settings.test_top - (winner is not None))]
        stopped_before_test, self.stopped = self.stopped, None
        for candidate in finalists:
            if self.cancelled or (self.cancel and self.cancel.is_set()):
                break
            scored = await self.score(candidate, self.split.test, 0)
            if scored is None:
                continue
            scores = scored[0]
            candidate.test_scores = scores
            candidate.test = statistics.fmean(scores.values()) if scores else 0.0
            self._record(candidate, status="winner" if candidate is winner else "scored")
            self._progress("test", f"{candidate.id}: {candidate.test:.3f} on test")
        self.stopped = stopped_before_test or self.stopped
        if winner is None or winner.test is None or baseline.test is None:
            return None
        return paired_comparison(baseline.test_scores, winner.test_scores, seed=self.settings.seed)

    def _ranked(self) -> list[Candidate]:
        scored = [c for c in self.candidates.values() if c.validation is not None]
        return sorted(scored, key=lambda c: (-c.rank[0], -c.rank[1]))

    # ---------------------------------------------------------------- history and progress

    def _record(self, candidate: Candidate, status: str = "scored") -> None:
        record = candidate_record(
            self.optimization_id,
            self.plan.file,
            self.base_version,
            self.plan.model,
            self.metric,
            candidate,
            status,
        )
        state_dir = ensure_state_dir(self.plan.root / STATE_DIR_NAME)
        with HistoryStore(state_dir / HISTORY_FILE) as store:
            store.record_candidate(record)

    def _progress(self, phase: str, message: str) -> None:
        if self.on_progress is None:
            return
        event = OptimizeProgress(
            phase, self.budget.used, self.budget.limit, len(self.candidates), message
        )
        try:
            self.on_progress(event)
        except Exception:  # a broken display must not end the run
            logger.exception("progress callback failed")


def candidate_record(
    optimization: str,
    file: str,
    base_version: str,
    model: str,
    metric: str,
    candidate: Candidate,
    status: str,
) -> CandidateRecord:
    """A scored candidate as the history keeps it (key-like values redacted from its text)."""
    return CandidateRecord(
        optimization=optimization,
        file=file,
        base_version=base_version,
        version=candidate.version,
        text=stored_text(candidate.text),
        change=candidate.change,
        generator=candidate.generator,
        model=model,
        metric=metric,
        validation=candidate.validation,
        validation_n=len(candidate.validation_scores),
        test=candidate.test,
        test_n=len(candidate.test_scores),
        created_at=time.time(),
        status=status,
    )


def _first_line_holds(output: str | None, expected: object) -> float:
    answer = as_text(expected).strip().casefold()
    lines = [line for line in (output or "").strip().splitlines() if line.strip()]
    return 1.0 if answer and lines and answer in lines[0].casefold() else 0.0


async def optimize_prompt(
    path: Path,
    text: str,
    options: EvalOptions,
    settings: OptimizeSettings | None = None,
    on_progress: Callable[[OptimizeProgress], None] | None = None,
    cancel: asyncio.Event | None = None,
) -> OptimizeReport:
    """Search for a better version of the prompt `text` (saved at `path`); EvalSetupError before
    any call when it cannot start. Cancelling keeps every candidate already scored."""
    optimizer = Optimizer(path, text, options, settings or OptimizeSettings(), on_progress, cancel)
    return await optimizer.run()


def record_applied(report: OptimizeReport, workspace_root: Path | None = None) -> None:
    """Keep the original text as a version in the history and mark the winner applied."""
    winner = report.winner
    if winner is None:
        raise EvalSetupError("nothing to apply: no candidate beat the original")
    from prompt_lsp.history.paths import state_root_for

    root = state_root_for(report.path, workspace_root)
    state_dir = ensure_state_dir(root / STATE_DIR_NAME)
    with HistoryStore(state_dir / HISTORY_FILE) as store:
        store.remember_version(
            report.file, report.baseline.version, stored_text(report.baseline.text)
        )
        store.record_candidate(
            candidate_record(
                report.optimization_id,
                report.file,
                report.baseline.version,
                report.model,
                report.metric,
                winner,
                "applied",
            )
        )


def apply_winner(report: OptimizeReport, workspace_root: Path | None = None) -> Path:
    """Write the winner to the file, keeping the original text as a version in the history."""
    record_applied(report, workspace_root)
    assert report.winner is not None
    report.path.write_text(report.winner.text, encoding="utf-8")
    return report.path
