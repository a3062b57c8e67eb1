"""`prompt-lsp eval FILE`: run a prompt on its examples, score, record and compare.

Exit codes: 0 success; 1 a metric under its threshold, or every call failed; 2 bad input or
usage (one line on stderr, never a traceback); 130 interrupted (the partial run is recorded).
Progress goes to stderr; tables and reports go to stdout, except with `--json -`: then stdout
holds the JSON report alone and the table goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prompt_lsp.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    fail,
    make_console,
    read_prompt,
)
from prompt_lsp.evaluation.formatting import format_delta, format_score, shorten

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from prompt_lsp.evaluation.metrics import MetricSpec
    from prompt_lsp.evaluation.options import EvalOptions, ProgressEvent
    from prompt_lsp.evaluation.report import RunReport
    from prompt_lsp.evaluation.results import ExampleResult

MAX_TABLE_ROWS = 50


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "eval",
        help="run a prompt on its examples and score it",
        description="Run FILE on its examples, score every output, record the run in the "
        "history and compare it with the previous version.",
    )
    evaluate.add_argument("file", metavar="FILE", help="a .prompt file")
    evaluate.add_argument("--model", metavar="MODEL", help="override the file's `model:`")
    evaluate.add_argument("--concurrency", type=int, metavar="N", help="parallel model calls")
    evaluate.add_argument("--repeat", type=int, metavar="N", help="run each example N times")
    evaluate.add_argument("--timeout", type=float, metavar="SECONDS", help="per-call timeout")
    evaluate.add_argument(
        "--example",
        action="append",
        metavar="ID",
        dest="examples",
        help="run only this example (repeatable; such runs are not recorded in the history)",
    )
    evaluate.add_argument(
        "--no-cache", action="store_true", help="ignore and do not fill the response cache"
    )
    evaluate.add_argument(
        "--router",
        metavar="FILE",
        help="spread calls over the deployments of a litellm router file (model_list with "
        "rpm/tpm budgets; default: $PROMPT_LSP_ROUTER)",
    )
    evaluate.add_argument("--json", metavar="PATH", help="write a JSON report ('-' = stdout)")
    evaluate.add_argument("--junit", metavar="PATH", help="write a JUnit XML report")
    evaluate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prompt_lsp.evaluation.session import EvalOptions, EvalSetupError

    # Ctrl-C cancels calls inside litellm, which leaves a coroutine of its own un-awaited: its
    # warning says nothing to the user.
    warnings.filterwarnings(
        "ignore", message="coroutine .* was never awaited", category=RuntimeWarning
    )
    try:
        path, text = read_prompt(args.file)
        for name in ("concurrency", "repeat"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise CommandError(f"--{name} must be at least 1")
        if args.timeout is not None and args.timeout <= 0:
            raise CommandError("--timeout must be a positive number of seconds")
    except CommandError as err:
        return fail(str(err))
    options = EvalOptions(
        model=args.model,
        concurrency=args.concurrency,
        repeat=args.repeat,
        use_cache=not args.no_cache,
        timeout=args.timeout,
        example_ids=args.examples,
        router=args.router,
    )
    try:
        report = asyncio.run(_evaluate_with_progress(path, text, options))
    except EvalSetupError as err:
        return fail(str(err))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("prompt-lsp: interrupted; finished results were recorded", file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_report(report, to_stderr=args.json == "-")
    try:
        _write_reports(report, args.json, args.junit)
    except OSError as err:
        return fail(f"cannot write the report: {err}")
    return _eval_exit_code(report)


def _eval_exit_code(report: RunReport) -> int:
    if report.status == "cancelled":
        done = len(report.results)
        print(
            f"prompt-lsp: cancelled after {done} of {report.total} calls; "
            "the partial run was recorded",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if report.status == "failed" or report.failed_thresholds:
        return EXIT_FAILED
    return EXIT_OK


async def _evaluate_with_progress(path: Path, text: str, options: EvalOptions) -> RunReport:
    from prompt_lsp.evaluation.session import evaluate_prompt

    cancel = asyncio.Event()
    with _sigint_cancels(cancel), _progress_bar(path.name) as on_progress:
        return await evaluate_prompt(path, text, options, on_progress=on_progress, cancel=cancel)


@contextlib.contextmanager
def _sigint_cancels(cancel: asyncio.Event) -> Iterator[None]:
    """First Ctrl-C: stop starting calls and record what finished. Second: cancel the task."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_sigint() -> None:
        if cancel.is_set() and task is not None:
            task.cancel()
        cancel.set()
        print("\nprompt-lsp: cancelling (Ctrl-C again to stop at once)…", file=sys.stderr)

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


@contextlib.contextmanager
def _progress_bar(name: str) -> Iterator[Callable[[ProgressEvent], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    console = make_console(stderr=True)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]}"),
        TextColumn("{task.fields[eta]}"),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # no bar in CI logs or when stderr is redirected
    )
    task_id = progress.add_task(f"eval {name}", total=None, failed="", eta="")

    def on_progress(event: ProgressEvent) -> None:
        failed = f"[red]{event.failed} failed[/red]" if event.failed else ""
        eta = f"ETA {event.eta_s:.0f}s" if event.eta_s is not None and event.done else ""
        progress.update(task_id, completed=event.done, total=event.total, failed=failed, eta=eta)

    with progress:
        yield on_progress


def _print_report(report: RunReport, to_stderr: bool = False) -> None:
    for warning in report.warnings:
        print(f"prompt-lsp: warning: {warning}", file=sys.stderr)
    console = make_console(stderr=to_stderr)
    console.print(_results_table(report))
    hidden = len(report.results) - MAX_TABLE_ROWS
    if hidden > 0:
        console.print(f"… {hidden} more rows (use --json PATH for all of them)", markup=False)
    for line in _summary_lines(report):
        console.print(line)


def _results_table(report: RunReport) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("id", overflow="fold")
    for position, spec in enumerate(report.metrics):
        table.add_column(spec.key, justify="right", style="bold" if position == 0 else None)
    table.add_column("latency", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("output / error", overflow="ellipsis", no_wrap=True, max_width=60)
    for result in report.results[:MAX_TABLE_ROWS]:
        label = result.id if report.repeat == 1 else f"{result.id}#{result.repeat + 1}"
        scores = [format_score(result.scores.get(spec.key)) for spec in report.metrics]
        latency = "" if result.latency_s is None else f"{result.latency_s:.2f}s"
        if result.cached:
            latency += " (cached)"
        tokens = str(result.prompt_tokens + result.completion_tokens) if result.ok else ""
        table.add_row(Text(label), *scores, latency, tokens, _detail(report, result))
    return table


_EXPLAINING_METRICS = ("code_tests", "llm_judge")  # their reasons say more than the output


def _detail(report: RunReport, result: ExampleResult) -> Text:
    """The error, else why an explaining metric scored low, else the output."""
    from rich.text import Text

    if result.error:
        return Text(shorten(result.error), style="red")
    for spec in report.metrics:
        score = result.scores.get(spec.key)
        reason = result.reasons.get(spec.key)
        if spec.name in _EXPLAINING_METRICS and reason and (score is None or score < 1):
            return Text(shorten(f"{spec.key}: {reason}"), style="yellow")
    return Text(shorten(result.output))


def _summary_lines(report: RunReport) -> list[Text]:
    from rich.text import Text

    comparison = report.comparison
    head = Text()
    head.append(f"{report.file}", style="bold")
    head.append(f" @ {report.version[:8]} · {report.model} · ")
    head.append(f"{report.n_ok} ok", style="green")
    if report.n_failed:
        head.append(f", {report.n_failed} failed", style="red")
    head.append(f" of {report.total} · {report.duration_s:.1f}s · {report.tokens} tokens")
    head.append(f" · ${report.cost:.4f}")
    if report.calls == 0 and report.results:
        head.append(" · all cached")
    lines: list[Text] = [head]
    for position, spec in enumerate(report.metrics):
        lines.append(_metric_line(report, spec, position == 0))
    if not report.metrics:
        lines.append(Text("no metrics: add `metrics:` to score the outputs", style="dim"))
    if comparison is not None:
        change = Text(f"compared with {comparison.previous_version[:8]}: ", style="dim")
        change.append(f"{len(comparison.improved)} improved", style="green")
        change.append(", ")
        change.append(f"{len(comparison.regressed)} regressed", style="red")
        lines.append(change)
    elif not report.recorded:
        lines.append(Text("some examples only: not recorded in the history", style="dim"))
    elif report.status == "ok":
        lines.append(Text("first evaluated version of this file", style="dim"))
    return lines


def _metric_line(report: RunReport, spec: MetricSpec, headline: bool) -> Text:
    from rich.text import Text

    value = report.aggregates.get(spec.key)
    line = Text(f"{spec.key:<14}", style="bold" if headline else None)
    line.append(format_score(value), style="bold" if headline else None)
    if spec.key in report.stdev:
        line.append(f" ± {report.stdev[spec.key]:.3f}")
    comparison = report.comparison
    delta = comparison.deltas.get(spec.key) if comparison else None
    if delta is not None:
        style = "green" if delta > 0 else "red" if delta < 0 else "dim"
        line.append(f"  {format_delta(delta)}", style=style)
    if spec.threshold is not None:
        passed = spec.passes(value)
        line.append(
            f"  {'≥' if passed else '<'} {spec.threshold:g} {'pass' if passed else 'FAIL'}",
            style="green" if passed else "bold red",
        )
    if headline:
        line.append("  (headline)", style="dim")
    return line


def _write_reports(report: RunReport, json_path: str | None, junit_path: str | None) -> None:
    if json_path:
        data = json.dumps(report.to_json(), indent=2, ensure_ascii=False)
        if json_path == "-":
            sys.stdout.write(data + "\n")
            sys.stdout.flush()
        else:
            Path(json_path).write_text(data + "\n", encoding="utf-8")
    if junit_path:
        Path(junit_path).write_text(report.to_junit_xml() + "\n", encoding="utf-8")
