"""`prompt-lsp serve | check | eval | history | render`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from prompt_lsp import __version__
from prompt_lsp.format.model import Range

PROMPT_SUFFIXES = (".prompt", ".prompty")
SKIPPED_DIRS = {".git", ".prompt-lsp", "node_modules", ".venv", "venv", "__pycache__"}


class UsageError(Exception):
    """Bad command-line input: one line, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as err:
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

    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument(
        "--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)"
    )
    serve.add_argument(
        "--tcp", metavar="HOST:PORT", help="listen on a TCP address instead of stdio"
    )
    serve.add_argument("--log-file", metavar="PATH", help="write the server's log to this file")
    serve.set_defaults(func=_serve)

    check = commands.add_parser(
        "check",
        help="report problems in .prompt files",
        description="Check .prompt/.prompty files and directories.",
    )
    check.add_argument(
        "paths", nargs="+", metavar="PATH", help="files or directories (searched recursively)"
    )
    check.add_argument(
        "--format", choices=("text", "json", "github"), default="text", help="output format"
    )
    check.add_argument(
        "--model", metavar="MODEL", help="model assumed for files that do not set `model:`"
    )
    check.set_defaults(func=_check)

    from prompt_lsp.evaluation.cli_commands import add_commands

    add_commands(commands)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from prompt_lsp.server import run_server

    host, port = None, None
    if args.tcp:
        host, _, port_text = args.tcp.rpartition(":")
        if not port_text.isdigit():
            raise UsageError(f"--tcp takes HOST:PORT, got {args.tcp!r}")
        host, port = host or "127.0.0.1", int(port_text)
    run_server(host=host, port=port, log_file=args.log_file)
    return 0


def find_prompt_files(paths: Sequence[str]) -> tuple[list[Path], list[str]]:
    """The prompt files under `paths`, and one message per path that is not there."""
    files: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(_walk(path, set())))
        elif path.is_file():
            files.append(path)
        elif not path.exists():
            problems.append(f"{raw}: no such file or directory")
        else:
            problems.append(f"{raw}: not a regular file")
    return files, problems


def _walk(directory: Path, seen: set[Path]) -> Iterator[Path]:
    real = directory.resolve()
    if real in seen:  # a symlink loop
        return
    seen.add(real)
    try:
        children = list(directory.iterdir())
    except OSError as err:
        print(f"prompt-lsp: {directory}: cannot list: {err.strerror}", file=sys.stderr)
        return
    for child in children:
        if child.is_dir() and child.name not in SKIPPED_DIRS:
            yield from _walk(child, seen)
        elif child.suffix in PROMPT_SUFFIXES and child.is_file():
            yield child


def _check(args: argparse.Namespace) -> int:
    from prompt_lsp.checks import Finding, Severity, check_document
    from prompt_lsp.evaluation.examples import load_examples
    from prompt_lsp.format import parse

    files, missing = find_prompt_files(args.paths)
    if missing and not files:
        raise UsageError("; ".join(missing))
    for message in missing:
        print(f"prompt-lsp: {message}", file=sys.stderr)
    results: list[tuple[Path, Finding]] = []
    unreadable = 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
            print(f"prompt-lsp: {path}: cannot read: {reason}", file=sys.stderr)
            unreadable += 1
            continue
        doc = parse(text, bounded=False, path=str(path))  # no typing to keep up with
        results += [
            (path, f)
            for f in check_document(
                doc, load_examples(doc, path.resolve()), path.resolve(), default_model=args.model
            )
        ]
    _print_findings(results, args.format)
    errors = sum(1 for _, f in results if f.severity == Severity.ERROR)
    if missing:
        return 2  # a usage problem, reported above; the other paths were still checked
    if args.format == "text":
        warnings = sum(1 for _, f in results if f.severity == Severity.WARNING)
        print(
            f"{len(files)} file(s) checked: {errors} error(s), {warnings} warning(s)",
            file=sys.stderr,
        )
    return 1 if errors or unreadable else 0


def _where(path: Path, finding) -> tuple[str, Range]:
    """The place to print: the examples file's line when the finding is really there."""
    target = finding.elsewhere
    if target is not None and target.path is not None:
        return _display(target.path), target.range
    return _display(path), target.range if target is not None else finding.range


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


_GITHUB_LEVEL = {1: "error", 2: "warning", 3: "notice", 4: "notice"}


def _print_findings(results, output_format: str) -> None:
    if output_format == "json":
        records = []
        for path, finding in results:
            file, rng = _where(path, finding)
            records.append(
                {
                    "path": file,
                    "line": rng.start.line + 1,
                    "column": rng.start.character + 1,
                    "end_line": rng.end.line + 1,
                    "end_column": rng.end.character + 1,
                    "severity": finding.severity.label,
                    "code": finding.code,
                    "message": finding.message,
                    "fixes": [fix.title for fix in finding.fixes],
                }
            )
        json.dump(records, sys.stdout, indent=2)
        print()
        return
    for path, finding in results:
        file, rng = _where(path, finding)
        line, column = rng.start.line + 1, rng.start.character + 1
        if output_format == "github":
            message = finding.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            level = _GITHUB_LEVEL[int(finding.severity)]
            print(f"::{level} file={file},line={line},col={column},title={finding.code}::{message}")
        else:
            print(
                f"{file}:{line}:{column}: {finding.severity.label} {finding.code} {finding.message}"
            )
