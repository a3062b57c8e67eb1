"""What every command shares: exit codes, one-line errors, reading a prompt, the console."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from prompt_lsp.history.paths import STATE_DIR_NAME

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

PROMPT_SUFFIXES = (".prompt", ".prompty")
SKIPPED_DIRS = {".git", STATE_DIR_NAME, "node_modules", ".venv", "venv", "__pycache__"}


class CommandError(Exception):
    """A one-line problem with the command's input (exit 2)."""


def add_template_language(parser: argparse.ArgumentParser) -> None:
    """`--template-language`: the workspace setting `promptLsp.templateLanguage` on the command
    line (a file's own `template:` key wins over it)."""
    from prompt_lsp.format.language import LANGUAGE_CHOICES

    parser.add_argument(
        "--template-language",
        choices=LANGUAGE_CHOICES,
        default="auto",
        help="template language of files whose front matter names none (default: recognised "
        "from each file)",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that calls the model: `--model`, `--concurrency`,
    `--no-cache` and `--allow-host`."""
    parser.add_argument("--model", metavar="MODEL", help="override the file's `model:`")
    parser.add_argument("--concurrency", type=int, metavar="N", help="parallel model calls")
    parser.add_argument(
        "--no-cache", action="store_true", help="ignore and do not fill the response cache"
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        metavar="HOST",
        dest="allowed_hosts",
        help="let the file's `api_base`/`base_url` HOST receive your API key from the "
        "environment (repeatable; also PROMPT_LSP_ALLOWED_HOSTS)",
    )


def json_text(value: object) -> str:
    """`value` as indented JSON text. orjson writes a 10,000-example report in milliseconds,
    where the standard library's indenting encoder (pure Python) takes a third of a second;
    the standard library remains for what orjson refuses (integers over 64 bits)."""
    import orjson

    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        import json

        return json.dumps(value, indent=2, ensure_ascii=False)


def template_language(args: argparse.Namespace) -> str | None:
    value = getattr(args, "template_language", "auto")
    return None if value in (None, "auto") else value


def fail(message: str) -> int:
    print(f"prompt-lsp: {message}", file=sys.stderr)
    return EXIT_USAGE


def read_prompt(file: str) -> tuple[Path, str]:
    path = Path(file)
    if not path.is_file():
        raise CommandError(f"{file}: no such file")
    try:
        return path, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CommandError(f"{file}: cannot read it ({err})") from err


def make_console(stderr: bool = False) -> Console:
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out.width = 160  # piped or redirected: do not squeeze tables into 80 columns
    return out


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
