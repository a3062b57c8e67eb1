"""`prompt-lsp serve | check | eval | optimize | history | render`: one module per command."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from prompt_lsp import __version__
from prompt_lsp.cli import check, evaluate, history, optimize, render, serve
from prompt_lsp.cli.common import CommandError


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Called with no `argv` (the `prompt-lsp` script, `python -m prompt_lsp`),
    the process ends as soon as the command has returned and its output is flushed: every
    database is committed and closed by then, and tearing down the interpreter's objects
    (litellm's above all) would add seconds after the last line."""
    code = run_command(argv)
    if argv is None:
        exit_now(code)
    return code


def exit_now(code: int) -> None:
    """Flush what the user sees and leave without the interpreter's teardown."""
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to show
            stream.flush()
    os._exit(code)


def run_command(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CommandError as err:
        print(f"prompt-lsp: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prompt-lsp: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prompt-lsp",
        description="Language server and CLI for .prompt files: check, evaluate and compare prompts.",
    )
    parser.add_argument("--version", action="version", version=f"prompt-lsp {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in (serve, check, evaluate, optimize, history, render):
        command.add_parser(commands)
    return parser
