"""`prompt-lsp serve`: the language server over stdio or TCP."""

from __future__ import annotations

import argparse

from prompt_lsp.cli.common import CommandError


def add_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument(
        "--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)"
    )
    serve.add_argument(
        "--tcp", metavar="HOST:PORT", help="listen on a TCP address instead of stdio"
    )
    serve.add_argument("--log-file", metavar="PATH", help="write the server's log to this file")
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prompt_lsp.server import run_server

    host, port = None, None
    if args.tcp:
        host, _, port_text = args.tcp.rpartition(":")
        if not port_text.isdigit():
            raise CommandError(f"--tcp takes HOST:PORT, got {args.tcp!r}")
        host, port = host or "127.0.0.1", int(port_text)
    run_server(host=host, port=port, log_file=args.log_file)
    return 0
