"""Baselines that travel with the repository: `name.baseline.json` beside `name.prompt`.

A baseline is one evaluated version's scores, written so it can be committed and reviewed:
sorted keys, two-space indent, floats rounded to `DIGITS` places, no time stamps, no outputs
unless asked, no secrets (the config is scrubbed before it reaches the report). A teammate, a
fresh clone or a CI job compares a run with it exactly as with the previous version in the
local history (`evaluation.stats` paired statistics on the per-example scores).

A baseline file comes from the repository, so it is untrusted input: it is size-bounded, parsed
as plain JSON and every value is type-checked; anything malformed is a `BaselineError` with one
line to show, never a crash.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompt_lsp.evaluation.report import RunReport
from prompt_lsp.evaluation.results import Comparison, ExampleScores
from prompt_lsp.history.compare import compare_scores
from prompt_lsp.history.paths import (
    UnsafePathError,
    baseline_path,
    check_readable,
    state_root_for,
)

FORMAT = "prompt-lsp baseline 1"
DIGITS = 6
MAX_BASELINE_BYTES = 20 * 1024 * 1024


class BaselineError(Exception):
    """A baseline file that cannot be read or used."""


@dataclass
class Baseline:
    """What a baseline file holds."""

    file: str  # the prompt's file name
    version: str  # sha256 of the prompt text the baseline scored
    model: str
    config: dict[str, Any]
    repeat: int
    metrics: list[dict[str, Any]]
    aggregates: dict[str, float | None]
    scores: ExampleScores
    outputs_saved: bool = False


def _rounded(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), DIGITS) + 0.0  # + 0.0: never "-0.0"


def baseline_from_report(report: RunReport, with_outputs: bool = False) -> Baseline:
    metrics = [m.key for m in report.metrics]
    scores = ExampleScores.from_results([r for r in report.results if r.ok], metrics)
    if not with_outputs:
        scores.outputs = {}
    return Baseline(
        file=Path(report.file).name,
        version=report.version,
        model=report.model,
        config=dict(report.config),
        repeat=report.repeat,
        metrics=[m.as_dict() for m in report.metrics],
        aggregates=dict(report.aggregates),
        scores=scores,
        outputs_saved=with_outputs,
    )


def baseline_json(baseline: Baseline) -> str:
    """The file's text: deterministic for the same scores, one line per example score."""
    examples: dict[str, dict[str, Any]] = {}
    for metric, means in baseline.scores.means.items():
        for example_id, mean in means.items():
            entry = examples.setdefault(example_id, {"scores": {}})
            entry["scores"][metric] = _rounded(mean)
    for metric, errors in baseline.scores.errors.items():
        for example_id, error in errors.items():
            examples.setdefault(example_id, {"scores": {}}).setdefault("noise", {})[metric] = (
                _rounded(error)
            )
    if baseline.outputs_saved:
        for example_id, output in baseline.scores.outputs.items():
            if example_id in examples:
                examples[example_id]["output"] = output
    data = {
        "format": FORMAT,
        "file": baseline.file,
        "version": baseline.version,
        "model": baseline.model,
        "config": baseline.config,
        "repeat": baseline.repeat,
        "metrics": baseline.metrics,
        "aggregates": {k: _rounded(v) for k, v in baseline.aggregates.items()},
        "examples": examples,
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def save_baseline(report: RunReport, prompt: Path, with_outputs: bool = False) -> Path:
    """Write the baseline beside the prompt. Through a temporary file and a rename, so a
    baseline that is a symlink (a cloned repository's trap) is replaced, never followed."""
    target = baseline_path(prompt)
    text = baseline_json(baseline_from_report(report, with_outputs))
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)  # a file to commit, not a private one
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target


def _number(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BaselineError(f"{where} is not a number")
    return float(value)


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BaselineError(f"{where} is not an object")
    return value


def parse_baseline(text: str, where: str = "baseline") -> Baseline:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise BaselineError(f"{where}: not JSON ({err.msg}, line {err.lineno})") from None
    data = _mapping(data, where)
    if data.get("format") != FORMAT:
        raise BaselineError(f"{where}: not a prompt-lsp baseline (format {FORMAT!r} expected)")
    metrics = data.get("metrics")
    if not isinstance(metrics, list) or not all(
        isinstance(m, dict) and isinstance(m.get("name"), str) for m in metrics
    ):
        raise BaselineError(f"{where}: `metrics` must be a list of {{name: …}} objects")
    scores = ExampleScores()
    for example_id, entry in _mapping(data.get("examples", {}), f"{where}: examples").items():
        entry = _mapping(entry, f"{where}: example {example_id}")
        for metric, value in _mapping(entry.get("scores", {}), f"{where}: {example_id}").items():
            number = _number(value, f"{where}: {example_id}.{metric}")
            if number is not None:
                scores.means.setdefault(metric, {})[example_id] = number
        for metric, value in _mapping(entry.get("noise", {}), f"{where}: {example_id}").items():
            number = _number(value, f"{where}: {example_id}.noise.{metric}")
            if number is not None:
                scores.errors.setdefault(metric, {})[example_id] = number
        output = entry.get("output")
        if isinstance(output, str):
            scores.outputs[example_id] = output
    aggregates = {
        str(k): _number(v, f"{where}: aggregates.{k}")
        for k, v in _mapping(data.get("aggregates", {}), f"{where}: aggregates").items()
    }
    repeat = data.get("repeat", 1)
    return Baseline(
        file=str(data.get("file", "")),
        version=str(data.get("version", "")),
        model=str(data.get("model", "")),
        config=_mapping(data.get("config", {}), f"{where}: config"),
        repeat=repeat if isinstance(repeat, int) and repeat >= 1 else 1,
        metrics=metrics,
        aggregates=aggregates,
        scores=scores,
        outputs_saved=bool(scores.outputs),
    )


def load_baseline(prompt: Path, workspace_root: Path | None = None) -> Baseline | None:
    """The baseline beside `prompt`; None when there is none. Raises BaselineError, also for a
    baseline that is a symlink out of the workspace."""
    target = baseline_path(prompt)
    try:
        size = target.stat().st_size
    except OSError:
        return None
    try:
        check_readable(target, state_root_for(prompt, workspace_root), "the baseline")
    except UnsafePathError as err:
        raise BaselineError(str(err)) from None
    if size > MAX_BASELINE_BYTES:
        raise BaselineError(f"{target.name}: larger than {MAX_BASELINE_BYTES // 2**20} MB")
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BaselineError(f"{target.name}: cannot read ({err})") from None
    return parse_baseline(text, target.name)


def compare_with_baseline(report: RunReport, baseline: Baseline, against: str) -> Comparison:
    """The report's run against the baseline's scores (current − baseline)."""
    metrics = [m.key for m in report.metrics]
    current = ExampleScores.from_results([r for r in report.results if r.ok], metrics)
    deltas, stats, improved, regressed = compare_scores(
        current, baseline.scores, metrics, report.aggregates, baseline.aggregates
    )
    return Comparison(
        previous_run_id="",
        previous_version=baseline.version,
        previous_model=baseline.model,
        previous_finished_at=0.0,
        previous_aggregates=dict(baseline.aggregates),
        deltas=deltas,
        stats=stats,
        improved=improved,
        regressed=regressed,
        metric=metrics[0] if metrics else None,
        against=against,
    )


def baseline_problems(report: RunReport) -> list[str]:
    """Why a run fails the baseline check: a metric significantly below the baseline (its
    paired interval wholly under zero) or below its threshold. Empty: the check passes."""
    from prompt_lsp.evaluation.formatting import format_interval, format_p_value, format_score

    problems = []
    comparison = report.baseline
    for spec in report.metrics:
        now = report.aggregates.get(spec.key)
        stat = comparison.stats.get(spec.key) if comparison else None
        if comparison is not None and stat is not None and stat.direction < 0:
            before = comparison.previous_aggregates.get(spec.key)
            problems.append(
                f"{spec.key} is significantly below the baseline: {format_score(now)} vs "
                f"{format_score(before)}, Δ {format_interval(stat)} "
                f"({stat.confidence:.0%} interval), {format_p_value(stat.p_value)}, n = {stat.n}"
            )
        if spec.key in report.failed_thresholds:
            problems.append(
                f"{spec.key} {format_score(now)} is below its threshold {spec.threshold:g}"
            )
    if report.status != "ok":
        problems.append(
            f"the run {report.status}: {report.n_failed} of {report.total} calls failed"
        )
    return problems
