"""A Markdown summary of runs for a pull-request comment or `$GITHUB_STEP_SUMMARY`: per file a
table of metrics with deltas and intervals (against the previous version / revision and the
baseline), the most regressed examples, and a word diff of the prompt."""

from __future__ import annotations

import difflib
import re

from prompt_lsp.evaluation.formatting import (
    distinct_baseline,
    format_change,
    format_interval,
    format_p_value,
    format_score,
    shorten,
    stats_sentence,
)
from prompt_lsp.evaluation.report import RunReport
from prompt_lsp.evaluation.results import Comparison

MOST_REGRESSED = 5
MAX_DIFF_LINES = 40


def _cell(text: str) -> str:
    """Table-cell safe: one line, no pipes, no HTML from the model or the file."""
    return shorten(text, 80).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def word_diff(before: str, after: str) -> list[str]:
    """Changed lines only, words marked `[-removed-]{+added+}` (git's --word-diff style)."""
    tokens_before = re.split(r"(\s+)", before)
    tokens_after = re.split(r"(\s+)", after)
    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=tokens_before, b=tokens_after, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            out.append("".join(tokens_before[a0:a1]))
            continue
        removed, added = "".join(tokens_before[a0:a1]), "".join(tokens_after[b0:b1])
        out.append(
            (f"[-{removed}-]" if removed.strip() else removed)
            + (f"{{+{added}+}}" if added.strip() else added)
        )
    lines = "".join(out).splitlines()
    return [line for line in lines if "[-" in line or "{+" in line]


def _metrics_table(report: RunReport, rows: list[tuple[str, Comparison | None]]) -> list[str]:
    lines = [
        "| metric | against | before | now | Δ | 95% interval | p | n | threshold |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in report.metrics:
        now = report.aggregates.get(spec.key)
        threshold = (
            ""
            if spec.threshold is None
            else (f"≥ {spec.threshold:g} {'✅' if spec.passes(now) else '❌'}")
        )
        for against, comparison in rows:
            if comparison is None:
                lines.append(
                    f"| {spec.key} | — | — | {format_score(now)} | — | — | — | — | {threshold} |"
                )
                continue
            stat = comparison.stats.get(spec.key)
            lines.append(
                f"| {spec.key} | {_cell(against)} | "
                f"{format_score(comparison.previous_aggregates.get(spec.key))} | "
                f"{format_score(now)} | "
                f"{format_change(comparison.deltas.get(spec.key), stat) or '—'} | "
                f"{format_interval(stat) if stat else '—'} | "
                f"{format_p_value(stat.p_value) if stat else '—'} | "
                f"{stat.n if stat else '—'} | {threshold} |"
            )
    return lines


def report_markdown(report: RunReport, verdict: str | None = None) -> str:
    """The summary of one file's run."""
    comparison, baseline = report.comparison, report.baseline
    rows: list[tuple[str, Comparison | None]] = []
    if comparison is not None:
        rows.append((comparison.against, comparison))
    if baseline is not None and distinct_baseline(comparison, baseline):
        rows.append((f"baseline ({baseline.previous_version[:8]})", baseline))
    elif baseline is not None and comparison is not None:
        rows[0] = (f"{comparison.against} = baseline", comparison)
    if not rows:
        rows.append(("", None))
    lines = [
        f"### `{report.file}` @ `{report.version[:8]}`" + (f" — {verdict}" if verdict else ""),
        "",
        f"{report.model} · {report.n_ok} ok, {report.n_failed} failed of {report.total} · "
        f"${report.cost:.4f}",
        "",
        *_metrics_table(report, rows),
    ]
    headline = report.headline
    for against, compared in rows:
        stat = compared.stats.get(headline.key) if compared and headline else None
        if stat is not None and headline is not None:
            lines += ["", f"vs {_cell(against)}: {headline.key} {stats_sentence(stat)}."]
    for against, compared in rows:
        regressed = [c for c in compared.regressed if c.beyond_noise] if compared else []
        if regressed:
            lines += [
                "",
                f"**Most regressed examples** (vs {_cell(against)})",
                "",
                "| example | before | now | output now |",
                "|---|---|---|---|",
            ]
            for change in regressed[:MOST_REGRESSED]:
                lines.append(
                    f"| `{_cell(change.example_id)}` | {change.before:.3f} | {change.after:.3f} | "
                    f"{_cell(change.after_output or '')} |"
                )
    texts = next(
        (
            (c.previous_text, c.current_text)
            for _, c in rows
            if c is not None and c.previous_text is not None and c.current_text is not None
        ),
        None,
    )
    if texts is not None:
        changed = word_diff(*texts)
        if changed:
            lines += ["", "<details><summary>Prompt changes (word diff)</summary>", "", "```text"]
            lines += [line.replace("```", "'''") for line in changed[:MAX_DIFF_LINES]]
            lines += ["```", "", "</details>"]
    return "\n".join(lines) + "\n"


def summary_markdown(sections: list[str], title: str = "prompt-lsp evaluation") -> str:
    return f"## {title}\n\n" + "\n".join(sections)
