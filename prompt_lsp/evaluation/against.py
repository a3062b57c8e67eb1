"""`--against REF`: compare a run with the version of the prompt at a git revision.

The old text comes from `git show REF:./name` (run in the prompt's folder, bounded in time and
size; REF is checked to name a commit first, so it can never be read as an option). Its scores
come, cheapest first, from the history (that exact text was evaluated here before), from the
committed baseline (when it scored that text), or from evaluating it now through the response
cache. Both versions are scored on the current examples, so the comparison is paired.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from prompt_lsp.evaluation.baseline import BaselineError, compare_with_baseline, load_baseline
from prompt_lsp.evaluation.options import EvalOptions
from prompt_lsp.evaluation.report import RunReport
from prompt_lsp.evaluation.results import Comparison, ExampleScores
from prompt_lsp.format.text import text_version
from prompt_lsp.history.compare import compare_scores, text_diff

GIT_TIMEOUT_S = 20
MAX_PROMPT_BYTES = 2 * 1024 * 1024


class RevisionError(Exception):
    """The revision or the file at it cannot be read."""


def _git(folder: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=folder,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise RevisionError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise RevisionError(f"git {args[0]} took longer than {GIT_TIMEOUT_S}s") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RevisionError(message[-1] if message else f"git {args[0]} failed")
    if len(done.stdout) > MAX_PROMPT_BYTES:
        raise RevisionError(f"the file at that revision is larger than {MAX_PROMPT_BYTES} bytes")
    return done.stdout.decode("utf-8", "surrogateescape")


def text_at_revision(path: Path, ref: str) -> str:
    """The prompt file's text at git revision `ref`."""
    folder = path.resolve().parent
    if not ref or ref.startswith("-") or any(c in ref for c in "\n\0"):
        raise RevisionError(f"{ref!r} is not a git revision")
    try:
        commit = _git(
            folder, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"
        ).strip()
    except RevisionError:
        commit = ""
    if not commit:
        raise RevisionError(f"{ref!r} is not a commit of the git repository at {folder}")
    try:
        return _git(folder, "show", f"{commit}:./{path.name}")
    except RevisionError as err:
        raise RevisionError(f"{path.name} at {ref}: {err}") from None


def compare_reports(
    current: RunReport,
    previous: RunReport,
    against: str,
    previous_text: str,
    current_text: str,
) -> Comparison:
    """Two reports of the same file (current − previous), paired by example id."""
    metrics = [m.key for m in current.metrics]
    deltas, stats, improved, regressed = compare_scores(
        ExampleScores.from_results([r for r in current.results if r.ok], metrics),
        ExampleScores.from_results([r for r in previous.results if r.ok], metrics),
        metrics,
        current.aggregates,
        previous.aggregates,
    )
    return Comparison(
        previous_run_id=previous.run_id,
        previous_version=previous.version,
        previous_model=previous.model,
        previous_finished_at=previous.started_at + previous.duration_s,
        previous_aggregates=dict(previous.aggregates),
        deltas=deltas,
        stats=stats,
        improved=improved,
        regressed=regressed,
        diff=text_diff(previous_text, current_text, f"{current.file}@{against}", current.file),
        metric=metrics[0] if metrics else None,
        against=against,
        previous_text=previous_text,
        current_text=current_text,
    )


async def compare_with_revision(
    current: RunReport,
    path: Path,
    current_text: str,
    ref: str,
    old_text: str,
    options: EvalOptions,
) -> tuple[Comparison, str]:
    """(comparison with `old_text`, the file at `ref` (see `text_at_revision`), and where its
    scores came from: "history", "baseline" or "evaluated")."""
    from prompt_lsp.evaluation.session import evaluate_prompt, load_last_report

    label = f"{ref} ({text_version(old_text)[:8]})"
    if text_version(old_text) == current.version:
        previous, source = current, "the same text"
    else:
        previous = load_last_report(path, old_text, options.workspace_root)
        source = "history"
        if previous is None or previous.status != "ok":
            try:
                baseline = load_baseline(path, options.workspace_root)
            except BaselineError:
                baseline = None
            if baseline is not None and baseline.version == text_version(old_text):
                comparison = compare_with_baseline(current, baseline, label)
                comparison.diff = text_diff(old_text, current_text, f"{path.name}@{ref}", path.name)
                comparison.previous_text, comparison.current_text = old_text, current_text
                return comparison, "baseline"
            previous = await evaluate_prompt(path, old_text, options)
            source = "evaluated"
    return compare_reports(current, previous, label, old_text, current_text), source
