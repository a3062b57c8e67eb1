"""The optimisation report as text: the leaderboard and the winner's diff, for the terminal and
for the document the editor shows."""

from __future__ import annotations

from prompt_lsp.evaluation.formatting import shorten
from prompt_lsp.evaluation.optimize.engine import Candidate, OptimizeReport

LEADERBOARD_ROWS = 15


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def leaderboard_lines(report: OptimizeReport, rows: int = LEADERBOARD_ROWS) -> list[str]:
    """A fixed-width table: rank, candidate id, validation and test score, what changed."""
    board = report.leaderboard()
    lines = [f"{'#':>3}  {'candidate':<9}  {'validation':>10}  {'test':>6}  what changed"]
    for rank, candidate in enumerate(board[:rows], 1):
        mark = " *" if report.winner is candidate else ""
        lines.append(
            f"{rank:>3}  {candidate.id:<9}  {_score(candidate.validation):>10}  "
            f"{_score(candidate.test):>6}  {_what(candidate)}{mark}"
        )
    if len(board) > rows:
        lines.append(f"… {len(board) - rows} more candidates (see `prompt-lsp history`)")
    return lines


def _what(candidate: Candidate) -> str:
    """The candidate's own change, and what it was made on."""
    on = (
        f" (on {candidate.parent})"
        if candidate.parent and candidate.change != candidate.step
        else ""
    )
    return shorten(f"{candidate.step}{on}", 100)


def headline(report: OptimizeReport) -> str:
    split = report.split
    sizes = f"{len(split.train)}/{len(split.validation)}/{len(split.test)} train/validation/test"
    spent = f"{report.calls} model calls" + (f" of {report.budget}" if report.budget else "")
    cost = f" · ${report.cost:.4f}" if report.cost else ""
    return (
        f"{report.file} · {report.model} · {report.metric} · {sizes} · {spent}{cost} · "
        f"{report.duration_s:.1f}s"
    )


def test_line(report: OptimizeReport) -> str | None:
    baseline, winner = report.baseline, report.winner
    if baseline.test is None:
        return None
    line = f"held-out test: original {_score(baseline.test)}"
    if winner is not None and winner.test is not None:
        line += f" → winner {_score(winner.test)}"
    return line


def markdown(report: OptimizeReport) -> str:
    """The whole report as a Markdown document."""
    parts = [
        f"# Optimize {report.path.name}",
        "",
        headline(report),
        "",
        f"**{report.verdict()}**",
        "",
    ]
    tested = test_line(report)
    if tested:
        parts += [tested, ""]
    if report.stopped:
        parts += [f"Stopped early: {report.stopped}.", ""]
    parts += [f"- {w}" for w in report.warnings]
    parts += [
        "## Leaderboard (chosen on validation only)",
        "",
        "```",
        *leaderboard_lines(report),
        "```",
        "",
    ]
    diff = report.diff()
    if diff and report.winner is not None:
        parts += [
            f"## Winner {report.winner.id}: {report.winner.change}",
            "",
            "```diff",
            diff.rstrip("\n"),
            "```",
            "",
        ]
    return "\n".join(parts)
