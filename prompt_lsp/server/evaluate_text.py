"""Text the editor shows for evaluations: lens titles, the comparison hover, and the documents
opened by Show rendered / Compare / Run example. Pure functions of reports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_lsp.evaluation.api import (
    distinct_baseline,
    format_change,
    format_interval,
    format_noise,
    format_p_value,
    format_score,
    format_when,
    load_examples,
    shorten,
    stats_sentence,
)
from prompt_lsp.format.render import RenderError, render_messages
from prompt_lsp.server.state import DocumentState

if TYPE_CHECKING:
    from prompt_lsp.evaluation.api import Comparison, ExampleResult, RunReport

MOST_REGRESSED = 3
OUTPUT_CHARS = 120


def _brief(text: object, width: int = OUTPUT_CHARS) -> str:
    return shorten(text, width) or "(empty)"


def _money(cost: float) -> str:
    return "$0" if not cost else f"${cost:.4f}"


def _change(comparison: Comparison, key: str) -> str:
    return format_change(comparison.deltas.get(key), comparison.stats.get(key))


def score_title(report: RunReport, edited: bool) -> str:
    """`rougeL 0.412 ▲0.051 · rouge1 0.480 ≈−0.012 · baseline ▼0.040 · 12/12 ok · 4.1 s · $0`:
    ▲/▼ when the paired interval excludes zero, ≈ when the change is within noise."""
    comparison = report.comparison
    parts = []
    for spec in report.metrics:
        text = f"{spec.key} {format_score(report.aggregates.get(spec.key))}"
        if comparison is not None:
            change = _change(comparison, spec.key)
            text += f" {change}" if change else ""
        parts.append(text)
    if comparison is None and parts and report.baseline is None:
        parts[0] += " (first run)"
    headline = report.headline
    if (
        distinct_baseline(report.comparison, report.baseline)
        and headline is not None
        and report.baseline is not None
    ):
        change = _change(report.baseline, headline.key)
        if change:
            parts.append(f"baseline {change}")
    finished = report.n_ok + report.n_failed
    if report.status == "cancelled":
        parts.append(f"cancelled at {finished}/{report.total}")
    else:
        parts.append(f"{report.n_ok}/{report.total} ok")
    parts.append(f"{report.duration_s:.1f} s")
    parts.append(_money(report.cost))
    title = " · ".join(parts)
    return f"{title} (edited since)" if edited else title


def example_lens_title(report: RunReport, result: ExampleResult) -> str:
    if result.error:
        return f"✗ {_brief(result.error, 80)}"
    headline = report.headline
    if headline is None:
        return "ok"
    text = f"{headline.key} {format_score(result.scores.get(headline.key))}"
    comparison = report.comparison
    if comparison is not None:
        for change in [*comparison.improved, *comparison.regressed]:
            if change.example_id == result.id:
                shown = format_change(change.delta, None)
                return f"{text} {shown if change.beyond_noise else format_noise(change.delta)}"
        return f"{text} ="
    return text


def changed_lines(diff: str) -> list[str]:
    """The +/- lines of a unified diff, without its headers."""
    return [
        line.rstrip("\n")
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def _stats_table(report: RunReport, comparison: Comparison, before_label: str) -> list[str]:
    level = next((f"{st.confidence:.0%}" for st in comparison.stats.values()), "95%")
    lines = [
        f"| metric | {before_label} | current | Δ | {level} interval | p | n |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in report.metrics:
        stat = comparison.stats.get(spec.key)
        lines.append(
            f"| {spec.key} | {format_score(comparison.previous_aggregates.get(spec.key))} | "
            f"{format_score(report.aggregates.get(spec.key))} | {_change(comparison, spec.key) or '—'} | "
            f"{format_interval(stat) if stat else '—'} | "
            f"{format_p_value(stat.p_value) if stat else '—'} | {stat.n if stat else '—'} |"
        )
    return lines


def _headline_sentence(report: RunReport, comparison: Comparison) -> list[str]:
    headline = report.headline
    stat = comparison.stats.get(headline.key) if headline else None
    return ["", f"{headline.key}: {stats_sentence(stat)}."] if headline and stat else []


def _baseline_markdown(report: RunReport) -> list[str]:
    baseline = report.baseline
    if baseline is None:
        return []
    lines = [
        "",
        f"**vs baseline** ({baseline.previous_version[:8]}, {baseline.previous_model})",
        "",
    ]
    lines += _stats_table(report, baseline, "baseline")
    lines += _headline_sentence(report, baseline)
    return lines


def comparison_markdown(report: RunReport, edited: bool) -> str:
    if report is None:
        return (
            "**Not evaluated yet.** Click **▶ Evaluate** above (or run `prompt-lsp eval FILE`) to "
            "score this prompt on its examples; each later version is compared with the one before."
        )
    note = "\n\n_The text was edited since this run._" if edited else ""
    comparison = report.comparison
    if comparison is None:
        rows = "\n".join(
            f"| {m.key} | {format_score(report.aggregates.get(m.key))} |" for m in report.metrics
        )
        return (
            f"**First evaluated version** ({report.model}, {format_when(report.started_at)})\n\n"
            f"| metric | score |\n|---|---|\n{rows}\n\nEdit the prompt and evaluate again to compare."
            + "\n".join(_baseline_markdown(report))
            + note
        )
    lines = [
        f"**This version vs the previous one** ({comparison.previous_version[:8]}, "
        f"{format_when(comparison.previous_finished_at)})",
        "",
        *_stats_table(report, comparison, "previous"),
        *_headline_sentence(report, comparison),
        *_baseline_markdown(report),
        "",
        f"{len(comparison.improved)} examples improved, {len(comparison.regressed)} regressed"
        + _noise_note(comparison)
        + ".",
    ]
    regressed = [c for c in comparison.regressed if c.beyond_noise]
    if regressed:
        lines += ["", "**Most regressed**"]
        for change in regressed[:MOST_REGRESSED]:
            lines.append(
                f"- `{change.example_id}` {change.metric} {change.before:.3f} → {change.after:.3f}  \n"
                f"  before: {_brief(change.before_output)}  \n  now: {_brief(change.after_output)}"
            )
    diff = changed_lines(comparison.diff)
    if diff:
        lines += ["", "**Changes to the prompt**", "```diff", *diff[:40], "```"]
    return "\n".join(lines) + note


def _noise_note(comparison: Comparison) -> str:
    within = sum(1 for c in [*comparison.improved, *comparison.regressed] if not c.beyond_noise)
    return f" ({within} of them within run-to-run noise)" if within else ""


def rendered_document(state: DocumentState, example_id: str | None) -> tuple[str, str]:
    """(file name, markdown) of the messages for one example, or the defaults alone."""
    examples = load_examples(state.doc, state.path)
    chosen = None
    if examples and examples.examples:
        chosen = next((e for e in examples.examples if e.id == example_id), examples.examples[0])
    stem = state.path.stem if state.path else "prompt"
    title = f"example {chosen.id}" if chosen else "defaults only"
    try:
        messages = render_messages(state.doc, dict(chosen.inputs) if chosen else {})
        body = "\n\n".join(f"### {m.role}\n\n```text\n{m.content}\n```" for m in messages)
    except RenderError as err:
        body = f"Cannot render: {err}"
    return f"{stem}.rendered.md", f"# {stem} — rendered ({title})\n\n{body}\n"


def compare_document(state: DocumentState, report: RunReport) -> tuple[str, str]:
    stem = state.path.stem if state.path else "prompt"
    comparison = report.comparison
    text = comparison_markdown(report, edited=False)
    return (
        f"{stem}.compare.md",
        f"# {stem} — comparison\n\n{text}\n\n## Full diff\n\n```diff\n{comparison.diff}```\n",
    )


def run_example_document(
    state: DocumentState, report: RunReport, example_id: str
) -> tuple[str, str]:
    stem = state.path.stem if state.path else "prompt"
    result = next((r for r in report.results if r.id == example_id), None)
    lines = [f"# {stem} — example {example_id} ({report.model})", ""]
    if result is None:
        lines.append("The example did not run.")
    else:
        lines += ["## Output", "", "```text", result.output or "", "```", ""]
        if result.expected is not None:
            lines += ["## Expected", "", "```text", str(result.expected), "```", ""]
        if result.error:
            lines += ["## Error", "", result.error, ""]
        if result.scores:
            lines += [
                "## Scores",
                "",
                *(f"- {k}: {format_score(v)}" for k, v in result.scores.items()),
                "",
            ]
        if result.reasons:
            lines += [*(f"- {k}: {v}" for k, v in result.reasons.items() if v), ""]
        latency = f"{result.latency_s:.2f} s" if result.latency_s is not None else "—"
        lines.append(
            f"Latency {latency} · {result.prompt_tokens}+{result.completion_tokens} tokens"
        )
    return f"{stem}.{example_id}.md", "\n".join(lines) + "\n"
