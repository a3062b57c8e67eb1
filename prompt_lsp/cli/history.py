"""`prompt-lsp history FILE [--diff | --candidates]`: the evaluated versions of a prompt, and
the candidates `optimize` tried."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from prompt_lsp.cli.common import EXIT_OK, fail, make_console

if TYPE_CHECKING:
    from rich.table import Table

    from prompt_lsp.evaluation.results import CandidateRecord, RunRecord
    from prompt_lsp.history.store import HistoryStore

from prompt_lsp.evaluation.formatting import (
    format_change,
    format_score,
    format_when,
    shorten,
    stats_sentence,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    history = subparsers.add_parser(
        "history",
        help="show the evaluated versions of a prompt",
        description="List the recorded runs of FILE, or compare its last two evaluated versions.",
    )
    history.add_argument("file", metavar="FILE", help="a .prompt file")
    history.add_argument(
        "--diff", action="store_true", help="compare the last two evaluated versions"
    )
    history.add_argument(
        "--candidates",
        action="store_true",
        help="list the candidates `prompt-lsp optimize` scored (not versions until applied)",
    )
    history.add_argument("--limit", type=int, default=30, metavar="N", help="rows to show")
    history.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prompt_lsp.evaluation.session import history_for

    path = Path(args.file)
    if not path.exists():
        return fail(f"{args.file}: no such file")
    found = history_for(path)
    if found is None:
        print(f"no evaluations recorded for {args.file} yet (run `prompt-lsp eval {args.file}`)")
        return EXIT_OK
    store, file = found
    with store:
        if args.diff:
            return _print_diff(store, file)
        candidates = store.candidates_for_file(file, limit=max(1, args.limit))
        if args.candidates:
            return _print_candidates(args.file, candidates)
        runs = store.runs_for_file(file, limit=max(1, args.limit))
        statuses = {run.id: _status(store, run) for run in runs}
    if runs:
        make_console().print(_history_table(runs, statuses))
    else:
        print(f"no evaluations recorded for {args.file} yet (run `prompt-lsp eval {args.file}`)")
    if candidates:
        print(
            f"optimize tried {len(candidates)}{'+' if len(candidates) >= args.limit else ''} "
            f"candidates: `prompt-lsp history {args.file} --candidates`"
        )
    return EXIT_OK


def _print_candidates(name: str, candidates: list[CandidateRecord]) -> int:
    from rich.table import Table
    from rich.text import Text

    if not candidates:
        print(f"no optimize candidates recorded for {name} (run `prompt-lsp optimize {name}`)")
        return EXIT_OK
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in ("date", "run", "candidate", "metric", "validation", "test", "status", "change"):
        justify = "right" if column in ("validation", "test") else "left"
        table.add_column(column, justify=justify)
    for candidate in candidates:
        table.add_row(
            format_when(candidate.created_at),
            candidate.optimization[:8],
            candidate.version[:8],
            candidate.metric,
            format_score(candidate.validation),
            format_score(candidate.test),
            Text(candidate.status, style="bold green" if candidate.status != "scored" else ""),
            Text(shorten(candidate.change, 70)),
        )
    make_console().print(table)
    return EXIT_OK


def _status(store: HistoryStore, run: RunRecord) -> str:
    """A run's status as a user reads it: one still going, or whose process was killed, says
    how far it got ("interrupted, 3 of 10")."""
    state = store.run_state(run)
    if state in ("running", "interrupted"):
        return f"{state}, {store.count_results(run.id)} of {run.total}"
    return state


def _history_table(runs: list[RunRecord], statuses: dict[str, str]) -> Table:
    from rich.table import Table
    from rich.text import Text

    keys: list[str] = []
    for run in runs:
        for metric in run.metrics:
            key = str(metric.get("key", metric["name"]))
            if key not in keys:
                keys.append(key)
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in ("date", "version", "model", "status"):
        table.add_column(column)
    for position, key in enumerate(keys):
        table.add_column(key, justify="right", style="bold" if position == 0 else None)
    table.add_column("ok / failed", justify="right")
    table.add_column("cost", justify="right")
    for run in runs:
        status = statuses.get(run.id, run.status)
        status_style = {"ok": "green", "cancelled": "yellow", "failed": "red"}.get(
            status.split(",")[0], "yellow"
        )
        table.add_row(
            format_when(run.finished_at),
            run.version[:8],
            Text(run.model),
            Text(status, style=status_style),
            *[
                format_score(run.aggregates.get(key)) if key in run.aggregates else ""
                for key in keys
            ],
            f"{run.n_ok} / {run.n_failed}",
            f"${run.cost:.4f}",
        )
    return table


def _print_diff(store: HistoryStore, file: str) -> int:
    from rich.syntax import Syntax
    from rich.text import Text

    from prompt_lsp.history.compare import compare_runs, last_two_versions

    pair = last_two_versions(store, file)
    if pair is None:
        print("fewer than two versions of this file have been evaluated; nothing to compare")
        return EXIT_OK
    current, previous = pair
    comparison = compare_runs(store, current, previous)
    console = make_console()
    console.print(
        Text(
            f"{previous.version[:8]} ({format_when(previous.finished_at)}, {previous.model}) → "
            f"{current.version[:8]} ({format_when(current.finished_at)}, {current.model})",
            style="bold",
        )
    )
    for key, delta in comparison.deltas.items():
        before = comparison.previous_aggregates.get(key)
        after = current.aggregates.get(key)
        line = Text(f"{key:<14}{format_score(before)} → {format_score(after)}")
        stat = comparison.stats.get(key)
        if delta is not None:
            direction = stat.direction if stat else 0
            line.append(
                f"  {format_change(delta, stat)}",
                style="green" if direction > 0 else "red" if direction < 0 else "dim",
            )
        if stat is not None and stat.n:
            line.append(f"  {stats_sentence(stat)}", style="dim")
        console.print(line)
    for title, changes, style in (
        ("regressed", comparison.regressed, "red"),
        ("improved", comparison.improved, "green"),
    ):
        console.print(Text(f"\n{len(changes)} {title} on {comparison.metric}", style=style))
        for change in changes[:20]:
            console.print(
                Text(
                    f"  {change.example_id}: {change.before:.3f} → {change.after:.3f}", style=style
                )
            )
            console.print(Text(f"    before: {shorten(change.before_output, 100)}", style="dim"))
            console.print(Text(f"    after:  {shorten(change.after_output, 100)}", style="dim"))
    console.print()
    if comparison.diff:
        console.print(
            Syntax(comparison.diff, "diff", theme="ansi_dark", background_color="default")
        )
    else:
        console.print("(the texts are identical)")
    return EXIT_OK
