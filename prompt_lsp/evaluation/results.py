"""What an evaluation produces: per-example results, runs and comparisons of two runs.

Evaluation owns these types; `history/` stores and reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ExampleResult:
    """One model call on one example (one repeat of it) and its scores."""

    index: int  # the example's 0-based position
    id: str  # the example's id
    inputs: dict[str, Any]
    expected: Any
    output: str | None
    scores: dict[str, float | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    latency_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    error: str | None = None
    cached: bool = False
    repeat: int = 0  # 0-based repeat number when `eval.repeat` > 1

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class RunRecord:
    """One evaluation of one version of one prompt file, as history keeps it."""

    id: str
    file: str  # relative to the state root (see paths.file_key)
    version: str  # sha256 of the prompt text
    model: str
    started_at: float  # unix time
    finished_at: float
    status: str  # "ok" | "cancelled" | "failed"
    metrics: list[dict[str, Any]]  # [{"name": "rougeL", "threshold": 0.3}, ...]; first = headline
    aggregates: dict[str, float | None]
    stdev: dict[str, float]
    cost: float
    prompt_tokens: int
    completion_tokens: int
    n_ok: int
    n_failed: int
    total: int
    duration_s: float
    repeat: int = 1

    @property
    def metric_names(self) -> list[str]:
        return [str(m["name"]) for m in self.metrics]

    @property
    def headline(self) -> str | None:
        names = self.metric_names
        return names[0] if names else None


@dataclass(frozen=True)
class ExampleChange:
    """An example whose score on `metric` moved between the two versions."""

    example_id: str
    metric: str
    before: float
    after: float
    before_output: str | None
    after_output: str | None

    @property
    def delta(self) -> float:
        return self.after - self.before


@dataclass
class Comparison:
    """The current run against the previous version's run (current − previous)."""

    previous_run_id: str
    previous_version: str
    previous_finished_at: float
    previous_aggregates: dict[str, float | None]
    deltas: dict[str, float | None]
    improved: list[ExampleChange] = field(default_factory=list)
    regressed: list[ExampleChange] = field(default_factory=list)
    diff: str = ""  # unified diff, previous text → current text
    metric: str | None = None  # the metric example changes are judged by (the headline)
