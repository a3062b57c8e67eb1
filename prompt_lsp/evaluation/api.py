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
from prompt_lsp.evaluation.formatting import format_delta, format_score, format_when, shorten
from prompt_lsp.evaluation.options import EvalOptions, EvalSetupError, ProgressEvent
from prompt_lsp.history.paths import output_dir, state_root_for, text_version

if TYPE_CHECKING:  # heavy modules: types only
    from prompt_lsp.evaluation.report import RunReport

    # re-exported for the editor's type hints
    from prompt_lsp.evaluation.results import ExampleChange as ExampleChange
    from prompt_lsp.evaluation.results import ExampleResult as ExampleResult

__all__ = [
    "MAX_EXAMPLES_BYTES",
    "EvalOptions",
    "EvalSetupError",
    "ExampleSet",
    "HistoryStamp",
    "ProgressEvent",
    "evaluate",
    "format_delta",
    "format_score",
    "format_when",
    "history_stamp",
    "last_report",
    "load_examples",
    "shorten",
    "state_root_for",
    "text_version",
    "write_output",
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


def last_report(path: Path, text: str, workspace_root: Path | None) -> RunReport | None:
    """The latest finished run of exactly this text, from history (no model call)."""
    from prompt_lsp.evaluation.session import load_last_report

    return load_last_report(path, text, workspace_root)


def history_stamp(path: Path, workspace_root: Path | None) -> HistoryStamp | None:
    """Changes whenever the history for `path` changes; None when there is no history yet."""
    from prompt_lsp.history.store import database_stamp

    return database_stamp(path, workspace_root)


def write_output(path: Path, workspace_root: Path | None, name: str, text: str) -> Path:
    """Write a document the editor shows (rendered prompt, comparison…) under the state folder's
    `out/`, and return where it went."""
    target = output_dir(path, workspace_root) / name
    target.write_text(text, encoding="utf-8")
    return target
