"""`prompt-lsp check PATH...`: the editor's diagnostics in the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prompt_lsp.checks.findings import Finding
from prompt_lsp.cli.common import CommandError, find_prompt_files
from prompt_lsp.format.model import Range


def add_parser(commands: argparse._SubParsersAction) -> None:
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
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prompt_lsp.checks import Severity, check_document
    from prompt_lsp.evaluation.examples import load_examples
    from prompt_lsp.format import parse

    files, missing = find_prompt_files(args.paths)
    if missing and not files:
        raise CommandError("; ".join(missing))
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
        doc = parse(text, bounded=False)  # no typing to keep up with
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


def _where(path: Path, finding: Finding) -> tuple[str, Range]:
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


def _print_findings(results: list[tuple[Path, Finding]], output_format: str) -> None:
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
