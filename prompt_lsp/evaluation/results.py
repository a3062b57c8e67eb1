"""What an evaluation produces: per-example results, runs and comparisons of two runs.

Evaluation owns these types; `history/` stores and reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prompt_lsp.evaluation.stats import PairedStats


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
    # False when repeats measured the example's run-to-run noise and the change is within it
    beyond_noise: bool = True

    @property
    def delta(self) -> float:
        return self.after - self.before


@dataclass
class ExampleScores:
    """One side of a comparison: each example's mean score per metric over its repeats, the
    standard error of that mean when repeats give one, and an output to show."""

    means: dict[str, dict[str, float]] = field(default_factory=dict)  # metric → id → mean
    errors: dict[str, dict[str, float]] = field(default_factory=dict)  # metric → id → s.e.
    outputs: dict[str, str | None] = field(default_factory=dict)  # id → first repeat's output

    @classmethod
    def from_results(cls, results: list[ExampleResult], metrics: list[str]) -> ExampleScores:
        from prompt_lsp.evaluation.stats import mean_by_key, mean_standard_errors

        scores = cls()
        for result in results:
            scores.outputs.setdefault(result.id, result.output)
        for metric in metrics:
            rows = [(r.id, score) for r in results if (score := r.scores.get(metric)) is not None]
            scores.means[metric] = mean_by_key(rows)
            scores.errors[metric] = mean_standard_errors(rows)
        return scores


@dataclass
class Comparison:
    """The current run against an earlier one (current − previous): the previous evaluated
    version from history, the committed baseline, or the version at a git revision."""

    previous_run_id: str
    previous_version: str
    previous_finished_at: float
    previous_aggregates: dict[str, float | None]
    deltas: dict[str, float | None]
    improved: list[ExampleChange] = field(default_factory=list)
    regressed: list[ExampleChange] = field(default_factory=list)
    diff: str = ""  # unified diff, previous text → current text
    metric: str | None = None  # the metric example changes are judged by (the headline)
    stats: dict[str, PairedStats] = field(default_factory=dict)  # per metric key, paired
    against: str = "previous version"  # what the previous side is, for people
    previous_model: str = ""  # shown for a baseline, which may come from another model
    previous_text: str | None = None
    current_text: str | None = None

    def significant_drops(self) -> list[str]:
        """Metrics whose paired interval lies wholly below zero."""
        return [key for key, stat in self.stats.items() if stat.direction < 0]


@dataclass
class CandidateRecord:
    """One prompt text an optimisation scored: a candidate of the file, not a version of it
    (until it is applied)."""

    optimization: str  # the id shared by every candidate of one `optimize` run
    file: str
    base_version: str  # sha256 of the text the optimisation started from
    version: str  # sha256 of this candidate's text
    text: str
    change: str  # what makes it different from its parent, one line
    generator: (
        str  # "baseline" | "demonstrations" | "instructions" | "tokens" | "config" | "reflection"
    )
    model: str
    metric: str
    validation: float | None
    validation_n: int
    test: float | None = None
    test_n: int = 0
    created_at: float = 0.0
    status: str = "scored"  # "scored" | "winner" | "applied"
