"""`prompt-lsp eval | history | render`: argparse subcommands over `session` and `history`.

Exit codes: 0 success; 1 a metric under its threshold, or every call failed; 2 bad input or
usage (one line on stderr, never a traceback); 130 interrupted (the partial run is recorded).
Progress goes to stderr; tables and reports go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prompt_lsp.evaluation.formatting import format_delta, format_score, format_when, shorten

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MAX_TABLE_ROWS = 50


def add_commands(subparsers: Any) -> None:
    """Register `eval`, `history` and `render` on the CLI's subparsers (sets `func`)."""
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
        "--allow-unsandboxed-code",
        action="store_true",
        help="where no sandbox (bubblewrap) exists, let code_tests run model-written code "
        "with your own permissions (dangerous: the code can read and change your files)",
    )
    evaluate.add_argument(
        "--allow-host",
        action="append",
        metavar="HOST",
        dest="allowed_hosts",
        help="let the file's `api_base`/`base_url` HOST receive your API key from the "
        "environment (repeatable; also PROMPT_LSP_ALLOWED_HOSTS)",
    )
    evaluate.add_argument("--json", metavar="PATH", help="write a JSON report ('-' = stdout)")
    evaluate.add_argument("--junit", metavar="PATH", help="write a JUnit XML report")
    evaluate.set_defaults(func=run_eval_command)

    history = subparsers.add_parser(
        "history",
        help="show the evaluated versions of a prompt",
        description="List the recorded runs of FILE, or compare its last two evaluated versions.",
    )
    history.add_argument("file", metavar="FILE", help="a .prompt file")
    history.add_argument(
        "--diff", action="store_true", help="compare the last two evaluated versions"
    )
    history.add_argument("--limit", type=int, default=30, metavar="N", help="rows to show")
    history.set_defaults(func=run_history_command)

    render = subparsers.add_parser(
        "render",
        help="show the messages a prompt sends for one example",
        description="Render FILE for example N (1-based; default 1, or the defaults alone when "
        "there are no examples) and print the messages as they would be sent.",
    )
    render.add_argument("file", metavar="FILE", help="a .prompt file")
    render.add_argument("--example", type=int, metavar="N", help="the example's number (1-based)")
    render.add_argument("--json", action="store_true", help="print the messages as JSON")
    render.set_defaults(func=run_render_command)


# ---------------------------------------------------------------------------- shared helpers


class CommandError(Exception):
    """A one-line problem with the command's input (exit 2)."""


def _fail(message: str) -> int:
    print(f"prompt-lsp: {message}", file=sys.stderr)
    return EXIT_USAGE


def _read_prompt(file: str) -> tuple[Path, str]:
    path = Path(file)
    if not path.is_file():
        raise CommandError(f"{file}: no such file")
    try:
        return path, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CommandError(f"{file}: cannot read it ({err})") from err


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console.width = 160  # piped or redirected: do not squeeze tables into 80 columns
    return console


# ---------------------------------------------------------------------------- eval


def run_eval_command(args: argparse.Namespace) -> int:
    from prompt_lsp.evaluation.session import EvalOptions, EvalSetupError

    # Ctrl-C cancels calls inside litellm, which leaves a coroutine of its own un-awaited: its
    # warning says nothing to the user.
    warnings.filterwarnings(
        "ignore", message="coroutine .* was never awaited", category=RuntimeWarning
    )
    try:
        path, text = _read_prompt(args.file)
        for name in ("concurrency", "repeat"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise CommandError(f"--{name} must be at least 1")
        if args.timeout is not None and args.timeout <= 0:
            raise CommandError("--timeout must be a positive number of seconds")
    except CommandError as err:
        return _fail(str(err))
    if args.allow_unsandboxed_code:
        from prompt_lsp.evaluation.sandbox import UNSANDBOXED_VARIABLE

        os.environ[UNSANDBOXED_VARIABLE] = "1"
    options = EvalOptions(
        model=args.model,
        concurrency=args.concurrency,
        repeat=args.repeat,
        use_cache=not args.no_cache,
        timeout=args.timeout,
        example_ids=args.examples,
        allowed_hosts=args.allowed_hosts,
    )
    try:
        report = asyncio.run(_evaluate_with_progress(path, text, options))
    except EvalSetupError as err:
        return _fail(str(err))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("prompt-lsp: interrupted; finished results were recorded", file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_report(report)
    try:
        _write_reports(report, args.json, args.junit)
    except OSError as err:
        return _fail(f"cannot write the report: {err}")
    return _eval_exit_code(report)


def _eval_exit_code(report: Any) -> int:
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


async def _evaluate_with_progress(path: Path, text: str, options: Any) -> Any:
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
def _progress_bar(name: str) -> Iterator[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    console = _console(stderr=True)
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

    def on_progress(event: Any) -> None:
        failed = f"[red]{event.failed} failed[/red]" if event.failed else ""
        eta = f"ETA {event.eta_s:.0f}s" if event.eta_s is not None and event.done else ""
        progress.update(task_id, completed=event.done, total=event.total, failed=failed, eta=eta)

    with progress:
        yield on_progress


def _print_report(report: Any) -> None:
    for warning in report.warnings:
        print(f"prompt-lsp: warning: {warning}", file=sys.stderr)
    console = _console()
    console.print(_results_table(report))
    hidden = len(report.results) - MAX_TABLE_ROWS
    if hidden > 0:
        console.print(f"… {hidden} more rows (use --json PATH for all of them)", markup=False)
    for line in _summary_lines(report):
        console.print(line)


def _results_table(report: Any) -> Any:
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


def _detail(report: Any, result: Any) -> Any:
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


def _summary_lines(report: Any) -> list[Any]:
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
    lines: list[Any] = [head]
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


def _metric_line(report: Any, spec: Any, headline: bool) -> Any:
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


def _write_reports(report: Any, json_path: str | None, junit_path: str | None) -> None:
    if json_path:
        data = json.dumps(report.to_json(), indent=2, ensure_ascii=False)
        if json_path == "-":
            print(data)
        else:
            Path(json_path).write_text(data + "\n", encoding="utf-8")
    if junit_path:
        Path(junit_path).write_text(report.to_junit_xml() + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- history


def run_history_command(args: argparse.Namespace) -> int:
    from prompt_lsp.evaluation.session import history_for

    path = Path(args.file)
    if not path.exists():
        return _fail(f"{args.file}: no such file")
    found = history_for(path)
    if found is None:
        print(f"no evaluations recorded for {args.file} yet (run `prompt-lsp eval {args.file}`)")
        return EXIT_OK
    store, file = found
    with store:
        if args.diff:
            return _print_diff(store, file)
        runs = store.runs_for_file(file, limit=max(1, args.limit))
    if not runs:
        print(f"no evaluations recorded for {args.file} yet (run `prompt-lsp eval {args.file}`)")
        return EXIT_OK
    _console().print(_history_table(runs))
    return EXIT_OK


def _history_table(runs: list[Any]) -> Any:
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
        status_style = {"ok": "green", "cancelled": "yellow", "failed": "red"}.get(run.status)
        table.add_row(
            format_when(run.finished_at),
            run.version[:8],
            Text(run.model),
            Text(run.status, style=status_style),
            *[
                format_score(run.aggregates.get(key)) if key in run.aggregates else ""
                for key in keys
            ],
            f"{run.n_ok} / {run.n_failed}",
            f"${run.cost:.4f}",
        )
    return table


def _print_diff(store: Any, file: str) -> int:
    from rich.syntax import Syntax
    from rich.text import Text

    from prompt_lsp.history.compare import compare_runs, last_two_versions

    pair = last_two_versions(store, file)
    if pair is None:
        print("fewer than two versions of this file have been evaluated; nothing to compare")
        return EXIT_OK
    current, previous = pair
    comparison = compare_runs(store, current, previous)
    console = _console()
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
        if delta is not None:
            line.append(
                f"  {format_delta(delta)}",
                style="green" if delta > 0 else "red" if delta < 0 else "dim",
            )
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


# ---------------------------------------------------------------------------- render


def run_render_command(args: argparse.Namespace) -> int:
    from prompt_lsp.evaluation.examples import load_examples
    from prompt_lsp.evaluation.session import EvalSetupError, check_parsable, render_example
    from prompt_lsp.format import parse

    try:
        path, text = _read_prompt(args.file)
        doc = parse(text, bounded=False)
        check_parsable(doc)
        example_set = load_examples(doc, path)
        examples = example_set.examples if example_set else []
        example = _pick_example(examples, args.example)
        messages = render_example(doc, example)
    except (CommandError, EvalSetupError) as err:
        return _fail(str(err))
    if args.json:
        print(json.dumps(messages, indent=2, ensure_ascii=False))
        return EXIT_OK
    from rich.rule import Rule

    console = _console()
    label = f"example {example.index + 1} (id {example.id})" if example else "defaults only"
    console.print(f"{path.name} — {label}", style="dim", markup=False)
    for message in messages:
        console.print(Rule(message["role"], align="left"))
        console.print(message["content"], markup=False, highlight=False)
    return EXIT_OK


def _pick_example(examples: list[Any], number: int | None) -> Any:
    if not examples:
        if number not in (None, 1):
            raise CommandError("this prompt has no examples; omit --example to render the defaults")
        return None
    chosen = 1 if number is None else number
    if not 1 <= chosen <= len(examples):
        raise CommandError(f"--example must be between 1 and {len(examples)}")
    return examples[chosen - 1]
