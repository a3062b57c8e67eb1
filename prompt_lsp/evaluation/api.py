"""The one door from the editor into evaluation and history.

The server imports only this module of `evaluation/` (a test checks it): what a run needs, what
history knows about a text, and where the documents the editor shows are written. Everything
heavy (litellm, the history database) is imported when first used, not at import time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from prompt_lsp.evaluation.examples import MAX_EXAMPLES_BYTES, ExampleSet, load_examples
from prompt_lsp.evaluation.formatting import (
    distinct_baseline,
    format_change,
    format_interval,
    format_noise,
    format_p_value,
    format_score,
    format_when,
    shorten,
    stats_sentence,
)
from prompt_lsp.evaluation.local_model import THREADS_VARIABLE
from prompt_lsp.evaluation.options import EvalOptions, EvalSetupError, ProgressEvent
from prompt_lsp.history import paths
from prompt_lsp.history.paths import UnsafePathError, baseline_stamp, state_root_for, text_version

if TYPE_CHECKING:  # heavy modules: types only
    from prompt_lsp.evaluation.optimize import OptimizeProgress, OptimizeReport
    from prompt_lsp.evaluation.report import RunReport
    from prompt_lsp.evaluation.results import Comparison, ExampleResult  # noqa: F401 (for server type hints)

    # re-exported for the editor's type hints
    from prompt_lsp.evaluation.results import ExampleChange as ExampleChange
    from prompt_lsp.format.model import PromptDocument

__all__ = [
    "THREADS_VARIABLE",
    "MAX_EXAMPLES_BYTES",
    "EvalOptions",
    "EvalSetupError",
    "ExampleSet",
    "HistoryStamp",
    "ProgressEvent",
    "UnsafePathError",
    "distinct_baseline",
    "evaluate",
    "format_change",
    "format_interval",
    "format_noise",
    "format_p_value",
    "format_score",
    "format_when",
    "history_stamp",
    "last_report",
    "load_examples",
    "optimize",
    "optimize_document",
    "record_applied",
    "shorten",
    "stats_sentence",
    "state_root_for",
    "text_version",
    "write_output",
    "creatable_examples_file",
]

HistoryStamp = tuple[int, ...]


async def evaluate(
    path: Path,
    text: str,
    options: EvalOptions,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    cancel: asyncio.Event | None = None,
) -> RunReport:
    """Run the prompt `text` (saved at `path`) on its examples; see `session.evaluate_prompt`."""
    from prompt_lsp.evaluation.session import evaluate_prompt

    return await evaluate_prompt(path, text, options, on_progress=on_progress, cancel=cancel)


async def optimize(
    path: Path,
    text: str,
    options: EvalOptions,
    budget: int | None = None,
    on_progress: Callable[[OptimizeProgress], None] | None = None,
    cancel: asyncio.Event | None = None,
) -> OptimizeReport:
    """Search for a better version of `text` with every offline generator (see
    `optimize.engine`); `budget` in model calls (default 300)."""
    from prompt_lsp.evaluation.optimize import DEFAULT_BUDGET, OptimizeSettings, optimize_prompt

    settings = OptimizeSettings(budget=budget or DEFAULT_BUDGET)
    return await optimize_prompt(path, text, options, settings, on_progress, cancel)


def optimize_document(report: OptimizeReport) -> str:
    """The leaderboard and the winner's diff, as Markdown."""
    from prompt_lsp.evaluation.optimize.summary import markdown

    return markdown(report)


def record_applied(report: OptimizeReport, workspace_root: Path | None) -> None:
    """The editor applied the winner: keep the original's text in the history and mark the
    candidate applied (the file itself was changed by the editor's edit)."""
    from prompt_lsp.evaluation.optimize import record_applied as record

    record(report, workspace_root)


def last_report(path: Path, text: str, workspace_root: Path | None) -> RunReport | None:
    """The latest finished run of exactly this text, from history (no model call)."""
    from prompt_lsp.evaluation.session import load_last_report

    return load_last_report(path, text, workspace_root)


def history_stamp(path: Path, workspace_root: Path | None) -> HistoryStamp | None:
    """Changes whenever the history for `path` or its baseline file changes; None when there
    is no history yet."""
    from prompt_lsp.history.store import database_stamp

    stamp = database_stamp(path, workspace_root)
    return None if stamp is None else (*stamp, *baseline_stamp(path))


def write_output(path: Path, workspace_root: Path | None, name: str, text: str) -> Path:
    """Write a document the editor shows (rendered prompt, comparison…) under the state folder's
    `out/`, and return where it went. `name` is made a plain file name (an example id may be
    `/../../x`); UnsafePathError when `.prompt-lsp` or `out` is a symlink (see `paths`)."""
    return paths.write_output(state_root_for(path, workspace_root), name, text)


def creatable_examples_file(
    doc: PromptDocument, prompt: Path, requested: str, workspace_root: Path | None
) -> Path:
    """The examples file the prompt `doc` (saved at `prompt`) names, if `requested` is that
    file and it lies inside the workspace; else UnsafePathError saying why. A command's
    arguments come from the client and may have been crafted: only the prompt's own
    `examples:` path can be created, never outside the workspace or through a symlink."""
    from prompt_lsp.format.examples import examples_path

    wanted = examples_path(doc, prompt)
    path = Path(requested).expanduser()
    if not path.is_absolute():
        path = prompt.parent / path  # as `examples:` is read
    if wanted is None or path.resolve() != wanted.resolve():
        raise UnsafePathError("only the examples file an open prompt names can be created")
    root = state_root_for(prompt, workspace_root)
    if not paths.is_inside(path, [root.resolve()]):
        raise UnsafePathError(f"{path.name} would be outside the workspace ({root}): not created")
    return path
