"""Comparing two evaluated versions of a prompt: metric deltas, example changes, text diff.

"Previous version" of a prompt = the latest finished (status ok) run of the same file whose
text hash differs from the current one. Examples are matched by id; with `eval.repeat` > 1 an
example's score is the mean over its repeats, and its repeats' spread is its run-to-run noise.
Every metric gets paired statistics (`evaluation.stats`): an interval and a p-value.
"""

from __future__ import annotations

import difflib

from prompt_lsp.evaluation.results import (
    Comparison,
    ExampleChange,
    ExampleResult,
    ExampleScores,
    RunRecord,
)
from prompt_lsp.evaluation.stats import PairedStats, exceeds_noise, paired_comparison
from prompt_lsp.history.store import HistoryStore

SCORE_EPSILON = 1e-9


def metric_deltas(
    current: dict[str, float | None], previous: dict[str, float | None]
) -> dict[str, float | None]:
    """current − previous for every metric of the current run; None when either side is."""
    deltas: dict[str, float | None] = {}
    for name, value in current.items():
        before = previous.get(name)
        deltas[name] = None if value is None or before is None else value - before
    return deltas


def paired_stats(
    current: ExampleScores, previous: ExampleScores, metrics: list[str]
) -> dict[str, PairedStats]:
    """Per metric, the paired statistics of the examples both sides scored."""
    return {
        metric: paired_comparison(previous.means.get(metric, {}), current.means.get(metric, {}))
        for metric in metrics
    }


def example_changes(
    current: ExampleScores, previous: ExampleScores, metric: str
) -> tuple[list[ExampleChange], list[ExampleChange]]:
    """(improved, regressed) examples on `metric`, biggest moves first. A change within the
    run-to-run noise its repeats measured is kept but marked (`beyond_noise` False)."""
    after, before = current.means.get(metric, {}), previous.means.get(metric, {})
    errors_after, errors_before = current.errors.get(metric, {}), previous.errors.get(metric, {})
    improved: list[ExampleChange] = []
    regressed: list[ExampleChange] = []
    for example_id, score_after in after.items():
        if example_id not in before:
            continue
        score_before = before[example_id]
        if abs(score_after - score_before) <= SCORE_EPSILON:
            continue
        change = ExampleChange(
            example_id,
            metric,
            score_before,
            score_after,
            previous.outputs.get(example_id),
            current.outputs.get(example_id),
            beyond_noise=exceeds_noise(
                score_after - score_before,
                errors_before.get(example_id),
                errors_after.get(example_id),
            ),
        )
        (improved if change.delta > 0 else regressed).append(change)
    improved.sort(key=lambda c: -c.delta)
    regressed.sort(key=lambda c: c.delta)
    return improved, regressed


def compare_scores(
    current: ExampleScores,
    previous: ExampleScores,
    metrics: list[str],
    current_aggregates: dict[str, float | None],
    previous_aggregates: dict[str, float | None],
) -> tuple[
    dict[str, float | None], dict[str, PairedStats], list[ExampleChange], list[ExampleChange]
]:
    """(deltas, paired stats, improved, regressed); example changes on the first metric."""
    headline = metrics[0] if metrics else None
    improved, regressed = example_changes(current, previous, headline) if headline else ([], [])
    return (
        metric_deltas(current_aggregates, previous_aggregates),
        paired_stats(current, previous, metrics),
        improved,
        regressed,
    )


def text_diff(before: str, after: str, before_name: str, after_name: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=before_name,
        tofile=after_name,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def compare_runs(
    store: HistoryStore,
    current: RunRecord,
    previous: RunRecord,
    current_results: list[ExampleResult] | None = None,
    current_text: str | None = None,
) -> Comparison:
    """Compare two recorded runs (the current one's results and text may be passed in)."""
    results_now = (
        current_results if current_results is not None else store.results_for_run(current.id)
    )
    results_before = store.results_for_run(previous.id)
    metrics = current.metric_names
    deltas, stats, improved, regressed = compare_scores(
        ExampleScores.from_results(results_now, metrics),
        ExampleScores.from_results(results_before, metrics),
        metrics,
        current.aggregates,
        previous.aggregates,
    )
    text_now = current_text
    if text_now is None:
        text_now = store.version_text(current.file, current.version) or ""
    text_before = store.version_text(previous.file, previous.version) or ""
    return Comparison(
        previous_run_id=previous.id,
        previous_version=previous.version,
        previous_finished_at=previous.finished_at,
        previous_aggregates=dict(previous.aggregates),
        deltas=deltas,
        stats=stats,
        improved=improved,
        regressed=regressed,
        diff=text_diff(
            text_before,
            text_now,
            f"{previous.file}@{previous.version[:8]}",
            f"{current.file}@{current.version[:8]}",
        ),
        metric=current.headline,
        previous_text=text_before,
        current_text=text_now,
    )


def compare_with_previous(
    store: HistoryStore,
    current: RunRecord,
    current_results: list[ExampleResult] | None = None,
    current_text: str | None = None,
) -> Comparison | None:
    """Compare a run with the previous evaluated version of its file; None when there is none."""
    previous = store.previous_version_run(current.file, current.version)
    if previous is None:
        return None
    return compare_runs(store, current, previous, current_results, current_text)


def last_two_versions(store: HistoryStore, file: str) -> tuple[RunRecord, RunRecord] | None:
    """The latest ok runs of the two most recently evaluated versions: (current, previous)."""
    latest: RunRecord | None = None
    for run in store.runs_for_file(file, limit=1000):
        if run.status != "ok":
            continue
        if latest is None:
            latest = run
        elif run.version != latest.version:
            return latest, run
    return None


def latest_run_for_version(store: HistoryStore, file: str, version: str) -> RunRecord | None:
    """The latest finished run of this exact text; indexed, cheap enough for every edit."""
    return store.latest_run_for_version(file, version)
