"""Where prompt-lsp keeps state that must outlive the process: `<root>/.prompt-lsp/`.

The root is the workspace root when the editor tells us one; otherwise the nearest enclosing
folder that already holds `.prompt-lsp/` or `.git`; otherwise the prompt's own folder. Finding
the root never creates anything: `ensure_state_dir` does, on the first write.
"""

from __future__ import annotations

import contextlib
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


def ensure_state_dir(state_dir: Path) -> Path:
    """Create `state_dir` with a `.gitignore` of `*`, so the state is never committed."""
    state_dir.mkdir(parents=True, exist_ok=True)
    gitignore = state_dir / ".gitignore"
    if not gitignore.exists():
        with contextlib.suppress(OSError):  # not worth failing a run over
            gitignore.write_text("*\n", encoding="utf-8")
    return state_dir


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


def output_dir(prompt_path: Path, workspace_root: Path | None = None) -> Path:
    """`<root>/.prompt-lsp/out`, created: where documents shown in the editor are written."""
    out = ensure_state_dir(state_dir_for(prompt_path, workspace_root)) / "out"
    out.mkdir(exist_ok=True)
    return out
