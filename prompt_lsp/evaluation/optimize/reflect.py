"""Reflective rewriting of the instruction, by the `gepa` library's engine.

`gepa.optimize` drives the search (its reflective mutation proposer and Pareto candidate
selection); this module is only the adapter onto our evaluation: a candidate is the prompt with
its instruction paragraph replaced, evaluating it is scoring it on examples through the
optimizer (same cache, same budget, same metric), and the reflective dataset shows the
reflection model the failing examples with their expected answers. gepa sees the training and
validation examples only; the test split stays with the optimizer.

gepa is synchronous, so it runs in a worker thread and hands each evaluation and reflection
call back to the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prompt_lsp.evaluation.metrics import as_text
from prompt_lsp.evaluation.optimize.edits import Variant, instruction_text, with_instruction
from prompt_lsp.format import parse
from prompt_lsp.format.examples import Example

if TYPE_CHECKING:
    from prompt_lsp.evaluation.optimize.engine import Candidate, Optimizer

logger = logging.getLogger(__name__)
COMPONENT = "instruction"
REFLECTION_TIMEOUT_S = 120.0
MAX_METRIC_CALLS_PER_VALIDATION = 6  # gepa's share: this many passes over validation at most
FEEDBACK_RECORDS = 8


@dataclass
class Trace:
    example: Example
    output: str
    score: float


class PromptAdapter:
    """gepa's GEPAAdapter for one prompt: the only component is the instruction paragraph."""

    def __init__(self, optimizer: Optimizer, parent: Candidate, loop: asyncio.AbstractEventLoop):
        self.optimizer, self.parent, self.loop = optimizer, parent, loop
        self.propose_new_texts = None  # gepa's own reflective proposer

    def _on_loop(self, coroutine: Any, timeout: float | None = None) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.CancelledError:
            raise RuntimeError("cancelled") from None

    def evaluate(
        self, batch: list[Example], candidate: dict[str, str], capture_traces: bool = False
    ) -> Any:
        from gepa import EvaluationBatch

        text = with_instruction(self.parent.text, candidate.get(COMPONENT, ""))
        scores = {e.id: 0.0 for e in batch}
        outputs: dict[str, str] = {}
        if text is not None and not self.optimizer._stop():
            probe = self.optimizer.new_candidate(
                Variant(text, "reflective rewrite (probe)", "reflection"), self.parent
            )
            reserve = self.optimizer._test_reserve
            scored = self._on_loop(
                self.optimizer._score(probe, tuple(e.id for e in batch), reserve)
            )
            if scored is not None:
                scores.update(scored[0])
                outputs = probe.outputs
        values = [scores[e.id] for e in batch]
        texts = [outputs.get(e.id, "") for e in batch]
        traces = [Trace(e, o, s) for e, o, s in zip(batch, texts, values, strict=True)]
        return EvaluationBatch(
            outputs=texts, scores=values, trajectories=traces if capture_traces else None
        )

    def make_reflective_dataset(
        self, candidate: dict[str, str], eval_batch: Any, components_to_update: list[str]
    ) -> Mapping[str, Sequence[Mapping[str, Any]]]:
        traces: list[Trace] = sorted(eval_batch.trajectories or [], key=lambda t: t.score)
        records = [
            {
                "Inputs": {k: as_text(v) for k, v in t.example.inputs.items()},
                "Generated Outputs": t.output,
                "Feedback": f"Expected answer: {as_text(t.example.expected)}. "
                + ("Correct." if t.score >= 1 else f"Score {t.score:.2f}: wrong."),
            }
            for t in traces[:FEEDBACK_RECORDS]
        ]
        return {COMPONENT: records}

    def reflection_lm(self, prompt: str | list[dict[str, Any]]) -> str:
        """The reflection model, through the optimizer's budget-counted transport."""
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        model = self.optimizer.settings.reflection_model or self.optimizer.plan.model
        reply = self._on_loop(
            self.optimizer.transport(model, messages, {}, REFLECTION_TIMEOUT_S),
            REFLECTION_TIMEOUT_S + 5,
        )
        return reply.text


class _Quiet:
    """gepa's logger prints to stdout, which the language server owns: to our log instead."""

    def log(self, message: str) -> None:
        logger.debug("gepa: %s", message)


async def reflect(optimizer: Optimizer, parent: Candidate, model: str) -> Candidate | None:
    """gepa's best instruction for `parent`, scored on validation like any candidate; None when
    the prompt has no plain instruction paragraph or the budget leaves no room."""
    doc = parse(parent.text, bounded=False)
    span = instruction_text(doc)
    if span is None:
        return None
    import gepa

    by_id = {e.id: e for e in optimizer.plan.examples}
    validation = optimizer.split.validation_for(parent.demo_ids)
    room = int(min(optimizer.budget.remaining, 10**9)) - optimizer._test_reserve - len(validation)
    max_calls = min(room, MAX_METRIC_CALLS_PER_VALIDATION * len(validation))
    if max_calls < 2 * len(validation):
        return None
    adapter = PromptAdapter(optimizer, parent, asyncio.get_running_loop())
    seed = "\n".join(doc.lines[span[0] : span[1]])
    result = await asyncio.to_thread(
        gepa.optimize,
        seed_candidate={COMPONENT: seed},
        trainset=[by_id[i] for i in optimizer.split.demo_pool if i not in set(validation)]
        or [by_id[i] for i in validation],
        valset=[by_id[i] for i in validation],
        adapter=adapter,
        reflection_lm=adapter.reflection_lm,
        max_metric_calls=max_calls,
        stop_callbacks=[lambda _state: optimizer._stop()],
        logger=_Quiet(),
        display_progress_bar=False,
        raise_on_exception=False,
        seed=optimizer.settings.seed,
    )
    best = result.best_candidate
    instruction = best.get(COMPONENT) if isinstance(best, dict) else str(best)
    text = with_instruction(parent.text, instruction or "") if instruction != seed else None
    if text is None or text == parent.text:
        return None
    first_line = (instruction or "").strip().splitlines()[0]
    variant = Variant(
        text, f"reflective rewrite (gepa, {model}): “{first_line[:60]}”", "reflection"
    )
    candidate = optimizer.new_candidate(variant, parent)
    known = optimizer.candidates.get(candidate.id)
    if known is not None:
        return known
    return candidate if await optimizer.validate(candidate) else None
