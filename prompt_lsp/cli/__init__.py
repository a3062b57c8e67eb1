"""`prompt-lsp serve | check | eval | optimize | history | render`: one module per command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from prompt_lsp import __version__
from prompt_lsp.cli import check, evaluate, history, optimize, render, serve
from prompt_lsp.cli.common import CommandError


def main(argv: Sequence[str] | None = None) -> int:
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
