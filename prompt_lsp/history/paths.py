"""Where prompt-lsp keeps state that must outlive the process: `<root>/.prompt-lsp/`.

The root is the workspace root when the editor tells us one; otherwise the nearest enclosing
folder that already holds `.prompt-lsp/` or `.git`; otherwise the prompt's own folder. Finding
the root never creates anything: `ensure_state_dir` does, on the first write.

The response cache is not in the workspace: a cache shipped in a cloned repository would supply
the outputs of a run. It lives in the user's cache folder (`$XDG_CACHE_HOME/prompt-lsp/`, by
default `~/.cache/prompt-lsp/`), one per workspace root.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import secrets
from pathlib import Path

from prompt_lsp.format.text import text_version as text_version  # a version's identity

STATE_DIR_NAME = ".prompt-lsp"
HISTORY_FILE = "history.sqlite3"
CACHE_FILE = "cache.sqlite3"
_ROOT_MARKERS = (STATE_DIR_NAME, ".git")


def state_root_for(prompt_path: Path, workspace_root: Path | None = None) -> Path:
    """The folder whose `.prompt-lsp/` holds the state for `prompt_path`."""
    if workspace_root is not None:
        return workspace_root.resolve()
    folder = prompt_path.resolve().parent
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).exists() for marker in _ROOT_MARKERS):
            return candidate
    return folder


def state_dir_for(prompt_path: Path, workspace_root: Path | None = None) -> Path:
    """`<root>/.prompt-lsp` for `prompt_path` (not created here)."""
    return state_root_for(prompt_path, workspace_root) / STATE_DIR_NAME


class UnsafePathError(Exception):
    """A read or write would leave the workspace (a symlink, `..`); the message says which."""


ALLOWED_PATHS_VARIABLE = "PROMPT_LSP_ALLOWED_PATHS"
OUTPUT_DIR_NAME = "out"
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_CHARS = 120


def allowed_folders(root: Path) -> list[Path]:
    """Where a prompt's files may be read from: its workspace, and folders the *user* listed in
    PROMPT_LSP_ALLOWED_PATHS (separated by the OS path separator)."""
    extra = [
        Path(p).expanduser() for p in os.environ.get(ALLOWED_PATHS_VARIABLE, "").split(os.pathsep)
    ]
    return [root.resolve(), *(p.resolve() for p in extra if str(p).strip() and p.is_absolute())]


def is_inside(path: Path, folders: list[Path]) -> bool:
    """Whether `path`, with every symlink and `..` resolved, is in one of `folders`."""
    resolved = path.resolve()
    return any(resolved == f or f in resolved.parents for f in folders)


def check_readable(path: Path, root: Path, what: str) -> None:
    """UnsafePathError unless `path` resolves inside the workspace `root` (or a folder the
    user allowed)."""
    if not is_inside(path, allowed_folders(root)):
        raise UnsafePathError(
            f"{what} {path.name} is outside the workspace ({root}); a prompt file may only "
            f"read files inside it (allow more with {ALLOWED_PATHS_VARIABLE})"
        )


BASELINE_SUFFIX = ".baseline.json"


def baseline_path(prompt: Path) -> Path:
    """The committed baseline beside a prompt: `summarize.prompt` → `summarize.baseline.json`."""
    return prompt.with_name(prompt.stem + BASELINE_SUFFIX)


def baseline_stamp(prompt: Path) -> tuple[int, ...]:
    """Changes whenever the baseline file beside `prompt` changes (a pull, a re-save)."""
    try:
        info = baseline_path(prompt).stat()
    except OSError:
        return (0,)
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def safe_name(name: str) -> str:
    """`name` as one plain file name: no separators, no leading dots, no control characters."""
    cleaned = _UNSAFE_NAME_CHARS.sub("_", name).lstrip("._") or "output"
    return cleaned[-MAX_NAME_CHARS:]


def _real_folder(folder: Path, root: Path) -> Path:
    """`folder` (created if missing), refusing one that is a symlink or leaves `root`."""
    if folder.is_symlink():
        raise UnsafePathError(f"{folder} is a symlink: prompt-lsp does not write through it")
    folder.mkdir(parents=True, exist_ok=True)
    if not is_inside(folder, [root.resolve()]):
        raise UnsafePathError(f"{folder} leads outside the workspace: nothing was written")
    return folder


def write_output(root: Path, name: str, text: str) -> Path:
    """Write `text` to `<root>/.prompt-lsp/out/<safe name>` and return the path: never through
    a symlink (a repository may ship `.prompt-lsp/out` pointing elsewhere), never outside."""
    state = ensure_state_dir(root / STATE_DIR_NAME)
    out = _real_folder(state / OUTPUT_DIR_NAME, root)
    target = out / safe_name(name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(target, flags, 0o644)
    except OSError as err:
        raise UnsafePathError(f"cannot write {target.name}: {err.strerror}") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return target


def ensure_state_dir(state_dir: Path) -> Path:
    """Create `state_dir` with a `.gitignore` of `*`, so the state is never committed.
    UnsafePathError when it is a symlink (a cloned repository could point it anywhere)."""
    if state_dir.is_symlink():
        raise UnsafePathError(f"{state_dir} is a symlink: prompt-lsp does not write through it")
    state_dir.mkdir(parents=True, exist_ok=True)
    gitignore = state_dir / ".gitignore"
    if not gitignore.exists():
        with contextlib.suppress(OSError):  # not worth failing a run over
            gitignore.write_text("*\n", encoding="utf-8")
    return state_dir


def user_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/prompt-lsp` (default `~/.cache/prompt-lsp`): this user's, on this
    machine, never part of a repository."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    folder = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return folder / "prompt-lsp"


def machine_id() -> str:
    """A random id of this user on this machine, kept in the user's cache folder: a history
    carries the id of whoever started it, so one shipped in a repository is recognised."""
    return _machine_id(user_cache_dir())


@functools.cache
def _machine_id(folder: Path) -> str:
    path = folder / "machine-id"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        found = path.read_text(encoding="utf-8").strip()
        if re.fullmatch(r"[0-9a-f]{32}", found):
            return found
    created = secrets.token_hex(16)
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(created + "\n")
    with contextlib.suppress(OSError, UnicodeDecodeError):  # another process may have won
        found = path.read_text(encoding="utf-8").strip()
        if re.fullmatch(r"[0-9a-f]{32}", found):
            return found
    return created


def response_cache_path(root: Path) -> Path:
    """The response cache of the workspace at `root` (its folder is made on first use, 0700)."""
    digest = hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogatepass")).hexdigest()
    folder = user_cache_dir() / "responses" / digest[:32]
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / CACHE_FILE


def file_key(prompt_path: Path, root: Path) -> str:
    """How history names a prompt file: its path relative to the root, with `/` separators.

    A file outside the root (possible when the editor's workspace is elsewhere) is named by its
    absolute path, so two such files never collide.
    """
    resolved = prompt_path.resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def history_path_for(prompt_path: Path, workspace_root: Path | None = None) -> Path:
    """The history database that records runs of `prompt_path` (it may not exist yet)."""
    return state_dir_for(prompt_path, workspace_root) / HISTORY_FILE
