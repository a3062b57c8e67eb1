"""Reading a prompt's examples: inline, or from its examples file, cached by (path, mtime, size)
so that checking on every keystroke costs one `stat`. Light: no model or metric imports, the
editor calls it on the typing path."""

from __future__ import annotations

from pathlib import Path

from prompt_lsp.format.examples import (
    ExampleSet,
    examples_path,
    inline_examples,
    parse_examples_file,
)
from prompt_lsp.format.model import PromptDocument
from prompt_lsp.history.paths import UnsafePathError, check_readable, state_root_for

MAX_EXAMPLES_BYTES = 50_000_000

_cache: dict[str, tuple[tuple[int, int], ExampleSet]] = {}


def load_examples(
    doc: PromptDocument, prompt_path: Path | None, workspace_root: Path | None = None
) -> ExampleSet | None:
    """The prompt's examples; None when it has no `examples:`. Never raises. A file outside
    the workspace (by `..` or a symlink; see `paths.check_readable`) is not read: a prompt
    from someone else's repository must not pick a file of yours to send to a model."""
    inline = inline_examples(doc)
    if inline is not None:
        return inline
    path = examples_path(doc, prompt_path)
    if path is None:
        return None
    if not path.is_absolute() and prompt_path is None:
        return ExampleSet(None, error="save the prompt first: its examples path is relative to it")
    if prompt_path is not None:
        try:
            check_readable(path, state_root_for(prompt_path, workspace_root), "the examples file")
        except UnsafePathError as err:
            return ExampleSet(path, error=str(err))
    return load_examples_file(path)


def load_examples_file(path: Path) -> ExampleSet:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return ExampleSet(path, missing=True, error=f"{path.name} does not exist")
    except OSError as err:
        return ExampleSet(path, error=f"cannot read {path.name}: {err.strerror}")
    if not path.is_file():
        return ExampleSet(path, error=f"{path.name} is not a file")
    key = str(path)
    hit = _cache.get(key)
    if hit and hit[0] == (stat.st_mtime_ns, stat.st_size):
        return hit[1]
    result = _read(path, stat.st_size)
    _cache[key] = ((stat.st_mtime_ns, stat.st_size), result)
    return result


def _read(path: Path, size: int) -> ExampleSet:
    if size > MAX_EXAMPLES_BYTES:
        return ExampleSet(
            path, error=f"{path.name} is larger than {MAX_EXAMPLES_BYTES // 1_000_000} MB"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return ExampleSet(path, error=f"{path.name} is not UTF-8 text")
    except OSError as err:
        return ExampleSet(path, error=f"cannot read {path.name}: {err.strerror}")
    return parse_examples_file(text, path)


def clear_cache() -> None:
    _cache.clear()
