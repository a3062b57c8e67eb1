"""What every command shares: exit codes, one-line errors, reading a prompt, the console."""

from __future__ import annotations

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
