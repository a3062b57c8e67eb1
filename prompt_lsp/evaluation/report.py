"""What an evaluation produced (`RunReport`) and its JSON and JUnit XML forms."""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_lsp.evaluation.metrics import MetricSpec
from prompt_lsp.evaluation.results import Comparison, ExampleChange, ExampleResult


@dataclass
class RunReport:
    """One evaluation of one version of a prompt: per-example results and aggregates."""

    run_id: str
    version: str  # sha256 of the prompt text
    file: str  # relative to the state root
    path: Path | None
    model: str
    status: str  # "ok" | "cancelled" | "failed"
    started_at: float  # unix time
    duration_s: float
    metrics: list[MetricSpec]  # in order; the first is the headline
    aggregates: dict[str, float | None]
    stdev: dict[str, float]
    n_ok: int
    n_failed: int
    total: int  # planned calls: examples × repeat
    cost: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    results: list[ExampleResult] = field(default_factory=list)
    comparison: Comparison | None = None  # with the previous evaluated version (history)
    baseline: Comparison | None = None  # with the committed baseline file, when there is one
    config: dict[str, Any] = field(default_factory=dict)  # the run's config, secrets removed
    failed_thresholds: list[str] = field(default_factory=list)
    repeat: int = 1
    calls: int = 0  # model calls made (retries included; 0 for a fully cached run)
    retries: int = 0
    warnings: list[str] = field(default_factory=list)  # e.g. malformed example rows skipped
    recorded: bool = True  # False for a run of some examples only: not a score of the version

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def headline(self) -> MetricSpec | None:
        return self.metrics[0] if self.metrics else None

    @property
    def mean_latency_s(self) -> float | None:
        values = [r.latency_s for r in self.results if r.ok and r.latency_s is not None]
        return sum(values) / len(values) if values else None

    def metric(self, key: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.key == key), None)

    def example_failures(self, result: ExampleResult) -> list[str]:
        """Why one result fails: its error, or each thresholded metric it scores under."""
        if result.error:
            return [result.error]
        reasons = []
        for spec in self.metrics:
            score = result.scores.get(spec.key)
            if spec.threshold is not None and (score is None or score < spec.threshold):
                shown = "none" if score is None else f"{score:.3f}"
                reasons.append(f"{spec.key} {shown} < {spec.threshold:g}")
        return reasons

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        comparison = self.comparison
        return {
            "file": self.file,
            "version": self.version,
            "run_id": self.run_id,
            "model": self.model,
            "status": self.status,
            "recorded": self.recorded,
            "started_at": _iso(self.started_at),
            "duration_s": round(self.duration_s, 3),
            "metrics": [m.as_dict() for m in self.metrics],
            "headline": self.headline.key if self.headline else None,
            "aggregates": self.aggregates,
            "stdev": self.stdev,
            "failed_thresholds": self.failed_thresholds,
            "warnings": self.warnings,
            "previous_version": comparison.previous_version if comparison else None,
            "compared_with": comparison.against if comparison else None,
            "deltas": comparison.deltas if comparison else {},
            "stats": _stats_json(comparison),
            "baseline": _comparison_json(self.baseline) if self.baseline else None,
            "regressed": [_change_json(c) for c in comparison.regressed] if comparison else [],
            "improved": [_change_json(c) for c in comparison.improved] if comparison else [],
            "n_ok": self.n_ok,
            "n_failed": self.n_failed,
            "total": self.total,
            "repeat": self.repeat,
            "cost": self.cost,
            "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens},
            "examples": [_result_json(r) for r in self.results],
        }

    # ------------------------------------------------------------------ JUnit

    def to_junit_xml(self) -> str:
        """One testcase per example (per repeat): a failure for an error or a score under a
        metric's threshold."""
        suite_name = self.file
        suite = ET.Element(
            "testsuite",
            name=suite_name,
            tests=str(len(self.results)),
            failures="0",
            errors="0",
            time=f"{self.duration_s:.3f}",
            timestamp=_iso(self.started_at),
        )
        properties = ET.SubElement(suite, "properties")
        for name, value in (("model", self.model), ("version", self.version)):
            ET.SubElement(properties, "property", name=name, value=value)
        for key, value in self.aggregates.items():
            shown = "" if value is None else f"{value:.4f}"
            ET.SubElement(properties, "property", name=f"aggregate.{key}", value=shown)
        for prefix, comparison in (("previous", self.comparison), ("baseline", self.baseline)):
            for key, value in _stats_properties(comparison):
                ET.SubElement(properties, "property", name=f"{prefix}.{key}", value=value)
        failures = errors = 0
        for result in self.results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=Path(self.file).stem,
                name=result.id if self.repeat == 1 else f"{result.id}#{result.repeat + 1}",
                time=f"{result.latency_s or 0:.3f}",
            )
            if result.error:
                errors += 1
                element = ET.SubElement(case, "error", message=result.error)
                element.text = result.error
                continue
            reasons = self.example_failures(result)
            if reasons:
                failures += 1
                element = ET.SubElement(case, "failure", message="; ".join(reasons))
                element.text = f"output:\n{result.output}"
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc).isoformat()


def _result_json(result: ExampleResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "index": result.index,
        "repeat": result.repeat,
        "inputs": result.inputs,
        "expected": result.expected,
        "output": result.output,
        "scores": result.scores,
        "reasons": result.reasons,
        "latency_s": None if result.latency_s is None else round(result.latency_s, 4),
        "tokens": {"prompt": result.prompt_tokens, "completion": result.completion_tokens},
        "cost": result.cost,
        "error": result.error,
        "cached": result.cached,
    }


def _change_json(change: ExampleChange) -> dict[str, Any]:
    return {
        "id": change.example_id,
        "metric": change.metric,
        "before": change.before,
        "after": change.after,
        "before_output": change.before_output,
        "after_output": change.after_output,
        "beyond_noise": change.beyond_noise,
    }


def _stats_json(comparison: Comparison | None) -> dict[str, Any]:
    """Per metric: n, excluded, mean_delta, ci_low, ci_high, p_value, test, significant, …"""
    if comparison is None:
        return {}
    return {key: stat.as_dict() for key, stat in comparison.stats.items()}


def _comparison_json(comparison: Comparison) -> dict[str, Any]:
    return {
        "against": comparison.against,
        "version": comparison.previous_version,
        "model": comparison.previous_model,
        "aggregates": comparison.previous_aggregates,
        "deltas": comparison.deltas,
        "stats": _stats_json(comparison),
        "significant_drops": comparison.significant_drops(),
        "regressed": [_change_json(c) for c in comparison.regressed],
        "improved": [_change_json(c) for c in comparison.improved],
    }


def _stats_properties(comparison: Comparison | None) -> list[tuple[str, str]]:
    """JUnit properties: `rougeL.delta`, `.ci_low`, `.ci_high`, `.p_value`, `.n`, `.significant`."""
    if comparison is None:
        return []
    rows = [("version", comparison.previous_version)]
    for key, stat in comparison.stats.items():
        for name, value in (
            ("delta", stat.mean_delta),
            ("ci_low", stat.ci_low),
            ("ci_high", stat.ci_high),
            ("p_value", stat.p_value),
        ):
            rows.append((f"{key}.{name}", "" if value is None else f"{value:.4f}"))
        rows.append((f"{key}.n", str(stat.n)))
        rows.append((f"{key}.significant", str(stat.significant).lower()))
    return rows
