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
import hashlib
import os
from pathlib import Path

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


def ensure_state_dir(state_dir: Path) -> Path:
    """Create `state_dir` with a `.gitignore` of `*`, so the state is never committed."""
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
