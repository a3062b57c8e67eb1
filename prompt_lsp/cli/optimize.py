"""`prompt-lsp optimize FILE`: search for a better prompt, choose on validation, judge on test.

Exit codes: 0 done (whether or not an improvement was found); 2 bad input or usage; 130
interrupted (every candidate scored so far is in the history). Progress goes to stderr; the
leaderboard, the verdict and the winner's diff go to stdout (or JSON with `--json -`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from prompt_lsp.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    add_run_options,
    fail,
    json_text,
    read_prompt,
)
from prompt_lsp.cli.evaluate import _sigint_cancels

if TYPE_CHECKING:
    from prompt_lsp.evaluation.optimize import OptimizeProgress, OptimizeReport, OptimizeSettings
    from prompt_lsp.evaluation.options import EvalOptions

GENERATOR_FLAGS = ("demonstrations", "config", "tokens", "instructions")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser(
        "optimize",
        help="search for a better prompt and report what it found",
        description="Vary FILE (demonstrations, instructions, special tokens, config), choose the "
        "best variant on a validation split and compare it with the original on an untouched "
        "test split. Every scored candidate is kept in the history.",
    )
    command.add_argument("file", metavar="FILE", help="a .prompt file with examples and a metric")
    command.add_argument(
        "--budget", type=int, default=300, metavar="CALLS", help="most model calls (default 300)"
    )
    command.add_argument("--max-cost", type=float, metavar="USD", help="stop at this cost")
    command.add_argument(
        "--split",
        default="0.5/0.25/0.25",
        metavar="T/V/T",
        help="train/validation/test fractions (default 0.5/0.25/0.25)",
    )
    command.add_argument("--seed", type=int, default=0, help="seed of the split and the choices")
    for name in GENERATOR_FLAGS:
        command.add_argument(
            f"--no-{name}", action="store_true", help=f"do not try {name} candidates"
        )
    command.add_argument(
        "--reflect",
        action="store_true",
        help="also rewrite the instruction from failing examples with the file's model "
        "(reflective search through gepa; needs a capable model)",
    )
    command.add_argument(
        "--reflection-model",
        metavar="MODEL",
        help="like --reflect, with this model writing the rewrites",
    )
    add_run_options(command)
    command.add_argument(
        "--apply", action="store_true", help="write a reliable winner to FILE (undo via history)"
    )
    command.add_argument("--json", metavar="PATH", help="write a JSON report ('-' = stdout)")
    command.set_defaults(func=run)


def _settings(args: argparse.Namespace) -> OptimizeSettings:
    from prompt_lsp.evaluation.optimize import REFLECTION, OptimizeSettings, SplitError, parse_split

    try:
        split = parse_split(args.split)
    except SplitError as err:
        raise CommandError(str(err)) from None
    if args.budget < 1:
        raise CommandError("--budget must be at least 1 model call")
    if args.max_cost is not None and args.max_cost <= 0:
        raise CommandError("--max-cost must be a positive amount")
    if args.concurrency is not None and args.concurrency < 1:
        raise CommandError("--concurrency must be at least 1")
    generators = tuple(g for g in GENERATOR_FLAGS if not getattr(args, f"no_{g}"))
    if args.reflect or args.reflection_model:
        generators += (REFLECTION,)
    if not generators:
        raise CommandError("every candidate generator is turned off")
    return OptimizeSettings(
        generators=generators,
        split=split,
        seed=args.seed,
        budget=args.budget,
        max_cost=args.max_cost,
        reflection_model=args.reflection_model,
    )


def run(args: argparse.Namespace) -> int:
    from prompt_lsp.evaluation.optimize import apply_winner
    from prompt_lsp.evaluation.options import EvalOptions, EvalSetupError

    warnings.filterwarnings(
        "ignore", message="coroutine .* was never awaited", category=RuntimeWarning
    )
    try:
        path, text = read_prompt(args.file)
        settings = _settings(args)
    except CommandError as err:
        return fail(str(err))
    options = EvalOptions(
        model=args.model,
        concurrency=args.concurrency,
        use_cache=not args.no_cache,
        allowed_hosts=args.allowed_hosts,
    )
    try:
        report = asyncio.run(_optimize(path, text, options, settings))
    except EvalSetupError as err:
        return fail(str(err))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("prompt-lsp: interrupted; the scored candidates are in the history", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json == "-":
        print(json_text(report.to_json()))
    else:
        _print_report(report)
    if args.json and args.json != "-":
        try:
            Path(args.json).write_text(json_text(report.to_json()) + "\n", "utf-8")
        except OSError as err:
            return fail(f"cannot write the report: {err}")
    if args.apply:
        if not report.reliable:
            print("prompt-lsp: not applied: no reliable improvement", file=sys.stderr)
        elif path.read_text(encoding="utf-8") != text:
            return fail(f"{args.file} changed while optimizing: not applied")
        else:
            apply_winner(report)
            print(
                f"prompt-lsp: applied {report.winner.id if report.winner else ''} to {args.file}; "
                "the original is kept in the history",
                file=sys.stderr,
            )
    return EXIT_INTERRUPTED if report.cancelled else EXIT_OK


async def _optimize(
    path: Path, text: str, options: EvalOptions, settings: OptimizeSettings
) -> OptimizeReport:
    from prompt_lsp.evaluation.optimize import optimize_prompt

    cancel = asyncio.Event()
    with _sigint_cancels(cancel):
        return await optimize_prompt(path, text, options, settings, _print_progress, cancel)


def _print_progress(event: OptimizeProgress) -> None:
    spent = f"{event.calls}/{event.budget}" if event.budget else str(event.calls)
    if event.phase == "estimate":
        print(f"prompt-lsp: optimize: {event.message}", file=sys.stderr)
        return
    print(f"  [{spent} calls] {event.phase}: {event.message}", file=sys.stderr)


def _print_report(report: OptimizeReport) -> None:
    from prompt_lsp.evaluation.optimize.summary import headline, leaderboard_lines, test_line

    for warning in report.warnings:
        print(f"prompt-lsp: warning: {warning}", file=sys.stderr)
    print(headline(report))
    print()
    print("\n".join(leaderboard_lines(report)))
    print()
    tested = test_line(report)
    if tested:
        print(tested)
    if report.stopped:
        print(f"stopped early: {report.stopped}")
    print(report.verdict())
    diff = report.diff()
    if diff:
        print()
        print(diff, end="" if diff.endswith("\n") else "\n")
