"""`prompt-lsp eval PATH...`: run prompts on their examples, score, record and compare.

Exit codes (one for all the files): 0 success; 1 a metric under its threshold, significantly
below the baseline (`--check-baseline`), or every call failed; 2 bad input or usage (one line
on stderr, never a traceback); 130 interrupted (the partial run is recorded). Progress goes to
stderr; tables and reports go to stdout, except with `--json -`: then stdout holds the JSON
report alone, and the tables and summaries go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
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
    EXIT_USAGE,
    CommandError,
    add_run_options,
    add_template_language,
    fail,
    find_prompt_files,
    json_text,
    make_console,
    read_prompt,
    template_language,
)
from prompt_lsp.evaluation.formatting import (
    distinct_baseline,
    format_bounds,
    format_change,
    format_p_value,
    format_score,
    shorten,
    stats_sentence,
)

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from prompt_lsp.evaluation.metrics import MetricSpec
    from prompt_lsp.evaluation.options import EvalOptions, ProgressEvent
    from prompt_lsp.evaluation.report import RunReport
    from prompt_lsp.evaluation.results import Comparison, ExampleResult

MAX_TABLE_ROWS = 50


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "eval",
        help="run a prompt on its examples and score it",
        description="Run each prompt on its examples, score every output, record the run in "
        "the history and compare it with the previous version (and the committed baseline "
        "NAME.baseline.json, when there is one) with paired statistics.",
    )
    evaluate.add_argument(
        "paths", nargs="+", metavar="PATH", help=".prompt files or folders (searched recursively)"
    )
    add_run_options(evaluate)
    evaluate.add_argument("--repeat", type=int, metavar="N", help="run each example N times")
    evaluate.add_argument("--timeout", type=float, metavar="SECONDS", help="per-call timeout")
    add_template_language(evaluate)
    evaluate.add_argument(
        "--example",
        action="append",
        metavar="ID",
        dest="examples",
        help="run only this example (repeatable; such runs are not recorded in the history)",
    )
    evaluate.add_argument(
        "--allow-unsandboxed-code",
        action="store_true",
        help="where no sandbox (bubblewrap) exists, let code_tests run model-written code "
        "with your own permissions (dangerous: the code can read and change your files)",
    )
    evaluate.add_argument(
        "--router",
        metavar="FILE",
        help="spread calls over the deployments of a litellm router file (model_list with "
        "rpm/tpm budgets; default: $PROMPT_LSP_ROUTER)",
    )
    evaluate.add_argument(
        "--json",
        metavar="PATH",
        help="write a JSON report ('-': stdout, which then holds nothing else)",
    )
    evaluate.add_argument("--junit", metavar="PATH", help="write a JUnit XML report")
    baseline = evaluate.add_argument_group("baselines and CI")
    baseline.add_argument(
        "--save-baseline",
        action="store_true",
        help="write NAME.baseline.json beside the prompt (commit it)",
    )
    baseline.add_argument(
        "--with-outputs", action="store_true", help="keep the outputs in the saved baseline"
    )
    baseline.add_argument(
        "--check-baseline",
        action="store_true",
        help="exit 1 when a metric is significantly below the baseline or under its threshold",
    )
    baseline.add_argument(
        "--against",
        metavar="REF",
        help="compare with the prompt as it is at git revision REF (e.g. main, HEAD~1)",
    )
    baseline.add_argument(
        "--format",
        choices=("text", "markdown"),
        default="text",
        help="markdown: print a summary fit for a pull-request comment instead of the table",
    )
    baseline.add_argument(
        "--summary",
        metavar="PATH",
        help="append the Markdown summary to PATH (e.g. $GITHUB_STEP_SUMMARY)",
    )
    evaluate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prompt_lsp.evaluation.session import EvalOptions

    # Ctrl-C cancels calls inside litellm, which leaves a coroutine of its own un-awaited: its
    # warning says nothing to the user.
    warnings.filterwarnings(
        "ignore", message="coroutine .* was never awaited", category=RuntimeWarning
    )
    try:
        for name in ("concurrency", "repeat"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise CommandError(f"--{name} must be at least 1")
        if args.timeout is not None and args.timeout <= 0:
            raise CommandError("--timeout must be a positive number of seconds")
        if args.with_outputs and not args.save_baseline:
            raise CommandError("--with-outputs goes with --save-baseline")
        if args.save_baseline and args.examples:
            raise CommandError("--save-baseline needs every example; drop --example")
        files = _prompt_files(args.paths)
    except CommandError as err:
        return fail(str(err))
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
        template_language=template_language(args),
        allowed_hosts=args.allowed_hosts,
        router=args.router,
    )
    reports: list[RunReport] = []
    sections: list[str] = []
    codes: list[int] = []
    for path in files:
        code, report, section = _evaluate_file(path, options, args)
        codes.append(code)
        if report is not None:
            reports.append(report)
        if section:
            sections.append(section)
        if code == EXIT_INTERRUPTED:
            break
    try:
        _write_reports(reports, args.json, args.junit)
        _write_summary(sections, args)
    except OSError as err:
        return fail(f"cannot write the report: {err}")
    if len(files) > 1:
        failed = sum(1 for code in codes if code != EXIT_OK)
        print(f"prompt-lsp: {len(codes)} prompt(s) evaluated, {failed} not ok", file=sys.stderr)
    return _overall_exit_code(codes)


def _prompt_files(paths: list[str]) -> list[Path]:
    if len(paths) == 1 and not Path(paths[0]).is_dir():
        read_prompt(paths[0])  # the one-file case keeps its one-line errors
        return [Path(paths[0])]
    files, missing = find_prompt_files(paths)
    if missing:
        raise CommandError("; ".join(missing))
    if not files:
        raise CommandError(f"no .prompt files under {', '.join(paths)}")
    return files


def _overall_exit_code(codes: list[int]) -> int:
    for code in (EXIT_INTERRUPTED, EXIT_USAGE, EXIT_FAILED):
        if code in codes:
            return code
    return EXIT_OK


def _evaluate_file(
    path: Path, options: EvalOptions, args: argparse.Namespace
) -> tuple[int, RunReport | None, str]:
    """Evaluate one prompt with the baseline and `--against` work the flags ask for:
    (exit code, report, Markdown section)."""
    from prompt_lsp.evaluation.against import (
        RevisionError,
        compare_with_revision,
        text_at_revision,
    )
    from prompt_lsp.evaluation.baseline import (
        BaselineError,
        baseline_path,
        baseline_problems,
        load_baseline,
        save_baseline,
    )
    from prompt_lsp.evaluation.session import EvalSetupError
    from prompt_lsp.evaluation.summary import report_markdown

    try:
        _, text = read_prompt(str(path))
        if args.check_baseline and load_baseline(path) is None:
            raise CommandError(
                f"{path}: no baseline ({baseline_path(path).name}); "
                "save one with `prompt-lsp eval FILE --save-baseline` and commit it"
            )
        old_text = text_at_revision(path, args.against) if args.against else None
        report = asyncio.run(_evaluate_with_progress(path, text, options))
        if old_text is not None and report.status != "cancelled":
            comparison, source = asyncio.run(
                compare_with_revision(report, path, text, args.against, old_text, options)
            )
            report.comparison = comparison
            print(f"prompt-lsp: {path}: {args.against} scores from {source}", file=sys.stderr)
    except (CommandError, BaselineError, RevisionError, EvalSetupError) as err:
        return fail(str(err)), None, ""
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("prompt-lsp: interrupted; finished results were recorded", file=sys.stderr)
        return EXIT_INTERRUPTED, None, ""
    code = _eval_exit_code(report)
    verdict = None
    if args.check_baseline:
        problems = baseline_problems(report)
        verdict = "❌ below the baseline" if problems else "✅ baseline check passed"
        _print_baseline_check(path, report, problems)
        if problems and code == EXIT_OK:
            code = EXIT_FAILED
    json_on_stdout = args.json == "-"  # then stdout holds the JSON report alone
    if args.format == "markdown":
        print(report_markdown(report, verdict), file=sys.stderr if json_on_stdout else sys.stdout)
    else:
        _print_report(report, to_stderr=json_on_stdout)
    if args.save_baseline:
        if report.status != "ok" or not report.recorded:
            print(f"prompt-lsp: {path}: run not ok; the baseline was not saved", file=sys.stderr)
            code = code or EXIT_FAILED
        else:
            try:
                target = save_baseline(report, path, with_outputs=args.with_outputs)
            except OSError as err:
                return fail(f"cannot write the baseline: {err}"), report, ""
            print(f"prompt-lsp: baseline written to {target}", file=sys.stderr)
    return code, report, report_markdown(report, verdict)


def _print_baseline_check(path: Path, report: RunReport, problems: list[str]) -> None:
    if problems:
        print(f"prompt-lsp: {path}: baseline check FAILED", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return
    headline = report.headline
    stat = report.baseline.stats.get(headline.key) if report.baseline and headline else None
    detail = f": {headline.key} {stats_sentence(stat)}" if stat and headline else ""
    print(f"prompt-lsp: {path}: baseline check passed{detail}", file=sys.stderr)


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
        change = Text(
            f"compared with {comparison.against} ({comparison.previous_version[:8]}): ",
            style="dim",
        )
        change.append(f"{len(comparison.improved)} improved", style="green")
        change.append(", ")
        change.append(f"{len(comparison.regressed)} regressed", style="red")
        lines.append(change)
    headline = report.headline
    baseline = report.baseline if distinct_baseline(comparison, report.baseline) else None
    for compared in (comparison, baseline):
        stat = compared.stats.get(headline.key) if compared and headline else None
        if stat is not None and headline is not None:
            lines.append(
                Text(f"{headline.key} vs {compared.against}: {stats_sentence(stat)}", style="dim")
            )
    if comparison is not None:
        return lines
    if not report.recorded:
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
    if comparison is not None:
        _append_change(line, comparison, spec.key)
    if report.baseline is not None and distinct_baseline(comparison, report.baseline):
        _append_change(line, report.baseline, spec.key)
    if spec.threshold is not None:
        passed = spec.passes(value)
        line.append(
            f"  {'≥' if passed else '<'} {spec.threshold:g} {'pass' if passed else 'FAIL'}",
            style="green" if passed else "bold red",
        )
    if headline:
        line.append("  (headline)", style="dim")
    return line


def _append_change(line: Text, comparison: Comparison, key: str) -> None:
    """`  vs previous version ≈+0.033 [−0.012, +0.080] p = 0.210 n=14` (▲/▼ when
    significant)."""
    stat = comparison.stats.get(key)
    change = format_change(comparison.deltas.get(key), stat)
    if not change:
        return
    direction = stat.direction if stat else 0
    style = "green" if direction > 0 else "red" if direction < 0 else "dim"
    name = "baseline" if comparison.against == "baseline" else f"vs {comparison.against}"
    line.append(f"  {name} {change}", style=style)
    if stat is not None and stat.n:
        line.append(
            f" {format_bounds(stat)} {format_p_value(stat.p_value)} n={stat.n}", style="dim"
        )


def _write_reports(reports: list[RunReport], json_path: str | None, junit_path: str | None) -> None:
    """One report: its JSON object and JUnit document; several: a JSON list and one
    testsuite per prompt."""
    if not reports:
        return
    if json_path:
        value = reports[0].to_json() if len(reports) == 1 else [r.to_json() for r in reports]
        data = json_text(value)
        if json_path == "-":
            sys.stdout.write(data + "\n")
            sys.stdout.flush()
        else:
            Path(json_path).write_text(data + "\n", encoding="utf-8")
    if junit_path:
        Path(junit_path).write_text(_junit_document(reports) + "\n", encoding="utf-8")


def _junit_document(reports: list[RunReport]) -> str:
    import xml.etree.ElementTree as ET

    if len(reports) == 1:
        return reports[0].to_junit_xml()
    root = ET.Element("testsuites")
    for report in reports:
        root.extend(ET.fromstring(report.to_junit_xml().split("\n", 1)[1]))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def _write_summary(sections: list[str], args: argparse.Namespace) -> None:
    if not args.summary or not sections:
        return
    from prompt_lsp.evaluation.summary import summary_markdown

    with open(args.summary, "a", encoding="utf-8") as out:
        out.write(summary_markdown(sections) + "\n")
