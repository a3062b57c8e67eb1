"""Optimize in the editor: an "Optimize" lens and code action that run `optimize` in the
background with work-done progress and cancel; when it is done, a document with the leaderboard
and the winner's diff, and a code action that applies the winner as a WorkspaceEdit (so undo
works), recording the original in the history."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
from lsprotocol import types

from prompt_lsp.evaluation import api
from prompt_lsp.evaluation.api import EvalOptions, EvalSetupError
from prompt_lsp.format.model import Position, Range
from prompt_lsp.server.jobs import Job, begin_progress, cancel_job, may_start, open_state
from prompt_lsp.server.server import PromptServer, contained
from prompt_lsp.server.state import DocumentState

if TYPE_CHECKING:
    from prompt_lsp.evaluation.api import OptimizeProgress, OptimizeReport

OPTIMIZE = "prompt-lsp.optimize"
CANCEL = "prompt-lsp.cancelOptimize"
SHOW = "prompt-lsp.showOptimizeReport"
APPLIED = "prompt-lsp.optimizeApplied"
STATUS = "prompt-lsp.optimizeStatus"


@attrs.define
class OptimizeArgs:
    uri: str
    budget: int | None = None  # model calls; default 300


@attrs.define
class UriArgs:
    uri: str


@dataclass
class Optimization(Job):
    """The optimisation of one prompt document: running, or its last report."""

    status: str = ""
    report: OptimizeReport | None = None


def apply_title(report: OptimizeReport) -> str:
    """ "Apply optimized prompt (+0.12 exact_match on held-out examples)"."""
    stats = report.stats
    if stats is None or stats.mean_delta is None:
        return "Apply optimized prompt (not scored on held-out examples)"
    gain = f"{stats.mean_delta:+.2f} {report.metric} on held-out examples"
    return f"Apply optimized prompt ({gain}{'' if report.reliable else ', within noise'})"


class Optimizations:
    def __init__(self, ls: PromptServer) -> None:
        self.ls = ls
        self.by_uri: dict[str, Optimization] = {}

    def of(self, uri: str) -> Optimization:
        return self.by_uri.setdefault(uri, Optimization())

    def root(self, state: DocumentState) -> Path | None:
        setting = self.ls.settings.history_path
        if setting:
            return Path(setting).expanduser()
        return self.ls.workspace_root(state.path)

    def _ready_report(self, state: DocumentState) -> OptimizeReport | None:
        """The finished report whose original is exactly the current text, with a winner."""
        optimization = self.by_uri.get(state.uri)
        report = optimization.report if optimization else None
        if report is None or report.winner is None or report.baseline.text != state.doc.text:
            return None
        return report

    # ---------------------------------------------------------------- lenses and actions

    def lenses(self, state: DocumentState) -> list[types.CodeLens]:
        top = types.Range(types.Position(0, 0), types.Position(0, 0))
        args = [{"uri": state.uri}]

        def lens(title: str, command: str) -> types.CodeLens:
            return types.CodeLens(top, types.Command(title=title, command=command, arguments=args))

        optimization = self.by_uri.get(state.uri)
        if optimization is not None and optimization.running:
            return [lens(f"Optimizing… {optimization.status}", STATUS), lens("Cancel", CANCEL)]
        if not _can_optimize(state):
            return []
        lenses = [lens("✦ Optimize", OPTIMIZE)]
        if optimization is not None and optimization.report is not None:
            lenses.append(lens("Optimize report", SHOW))
        return lenses

    def actions(
        self, state: DocumentState, params: types.CodeActionParams
    ) -> list[types.CodeAction]:
        only = params.context.only

        def wanted(kind: str) -> bool:
            return only is None or any(kind == k or kind.startswith(f"{k}.") for k in only)

        actions: list[types.CodeAction] = []
        report = self._ready_report(state)
        if report is not None and wanted(types.CodeActionKind.RefactorRewrite):
            assert report.winner is not None
            whole = state.positions.range(Range(Position(0, 0), state.doc.end_position()))
            actions.append(
                types.CodeAction(
                    apply_title(report),
                    kind=types.CodeActionKind.RefactorRewrite,
                    edit=types.WorkspaceEdit(
                        changes={state.uri: [types.TextEdit(whole, report.winner.text)]}
                    ),
                    command=types.Command(
                        title="Record the applied prompt",
                        command=APPLIED,
                        arguments=[{"uri": state.uri}],
                    ),
                    is_preferred=report.reliable or None,
                )
            )
        optimization = self.by_uri.get(state.uri)
        running = optimization is not None and optimization.running
        if _can_optimize(state) and not running and wanted(types.CodeActionKind.Source):
            actions.append(
                types.CodeAction(
                    "Optimize prompt (search demonstrations, instructions, tokens, config)",
                    kind=types.CodeActionKind.Source,
                    command=types.Command(
                        title="Optimize", command=OPTIMIZE, arguments=[{"uri": state.uri}]
                    ),
                )
            )
        return actions

    # ---------------------------------------------------------------- running

    async def start(self, state: DocumentState, budget: int | None) -> None:
        optimization = self.of(state.uri)
        if not may_start(self.ls, state, optimization, "optimisation"):
            return
        optimization.cancel = asyncio.Event()
        optimization.status = "starting"
        name = state.doc.name or (state.path.stem if state.path else "prompt")
        token = await begin_progress(self.ls, "optimize", f"Optimizing {name}", optimization.cancel)
        optimization.task = self.ls.spawn(self._run(state, optimization, token, budget))
        self.ls.refresh_views(inlay_hints=False)

    async def _run(
        self,
        state: DocumentState,
        optimization: Optimization,
        token: str | None,
        budget: int | None,
    ) -> None:
        def on_progress(event: OptimizeProgress) -> None:
            spent = (
                f"{event.calls}/{event.budget} calls" if event.budget else f"{event.calls} calls"
            )
            optimization.status = f"{spent} · {event.scored} candidates"
            if token is not None:
                percentage = int(100 * event.calls / event.budget) if event.budget else None
                self.ls.work_done_progress.report(
                    token,
                    types.WorkDoneProgressReport(
                        message=f"{spent} · {event.message}"[:200],
                        percentage=min(100, percentage) if percentage is not None else None,
                        cancellable=True,
                    ),
                )
            self.ls.refresh_views(inlay_hints=False)

        message = "done"
        assert state.path is not None
        try:
            report = await api.optimize(
                state.path,
                state.doc.text,
                self.options(state),
                budget,
                on_progress,
                optimization.cancel,
            )
        except EvalSetupError as err:
            message = f"cannot optimize: {err}"
            self.ls.show_to_client(f"prompt-lsp: {message}", types.MessageType.Error)
        except asyncio.CancelledError:
            message = "cancelled"
            raise
        except Exception as err:
            message = f"optimize failed: {err!r}"
            self.ls.log_to_client(message, types.MessageType.Error)
            self.ls.show_to_client(f"prompt-lsp: {message}", types.MessageType.Error)
        else:
            optimization.report = report
            message = report.verdict()
            await self.show_report(state, report)
        finally:
            if token is not None:
                self.ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
                self.ls.work_done_progress.tokens.pop(token, None)
            optimization.task = None
            self.ls.refresh_views(inlay_hints=False)

    def options(self, state: DocumentState) -> EvalOptions:
        settings = self.ls.settings
        run = state.doc.settings.run
        return EvalOptions(
            default_model=settings.default_model,
            concurrency=None if run.concurrency is not None else settings.concurrency,
            use_cache=settings.cache if run.cache is None else run.cache,
            workspace_root=self.root(state),
        )

    async def show_report(self, state: DocumentState, report: OptimizeReport) -> None:
        assert state.path is not None
        text = await asyncio.to_thread(api.optimize_document, report)
        name = f"{state.path.stem}.optimize.md"
        target = await asyncio.to_thread(api.write_output, state.path, self.root(state), name, text)
        window = self.ls.client_capabilities.window
        if window and window.show_document and window.show_document.support:
            await self.ls.window_show_document_async(
                types.ShowDocumentParams(uri=target.as_uri(), take_focus=False)
            )
        else:
            self.ls.show_to_client(f"{report.verdict()} — report written to {target}")


def _can_optimize(state: DocumentState) -> bool:
    """A saved prompt that names examples and a metric; no file is read (code actions are
    answered on the event loop): the run reports anything else that is missing."""
    settings = state.doc.settings
    return state.path is not None and bool(settings.metrics) and bool(settings.examples)


def register(ls: PromptServer) -> Optimizations:
    optimizations = Optimizations(ls)
    ls.lens_providers.append(optimizations.lenses)
    ls.action_providers.append(optimizations.actions)

    @ls.command(OPTIMIZE)
    @contained()
    async def optimize(ls: PromptServer, args: OptimizeArgs) -> None:
        await optimizations.start(open_state(ls, args.uri), args.budget)

    @ls.command(CANCEL)
    @contained()
    def cancel(ls: PromptServer, args: UriArgs) -> None:
        cancel_job(ls, optimizations.by_uri.get(args.uri), "optimisation")

    @ls.command(STATUS)
    @contained()
    def status(ls: PromptServer, args: UriArgs) -> None:
        optimization = optimizations.by_uri.get(args.uri)
        if optimization is not None and optimization.running:
            ls.show_to_client(f"Optimizing: {optimization.status}.")

    @ls.command(SHOW)
    @contained()
    async def show(ls: PromptServer, args: UriArgs) -> None:
        state = open_state(ls, args.uri)
        optimization = optimizations.by_uri.get(args.uri)
        if optimization is None or optimization.report is None:
            ls.show_to_client("Nothing optimized yet: run Optimize first.")
            return
        await optimizations.show_report(state, optimization.report)

    @ls.command(APPLIED)
    @contained()
    async def applied(ls: PromptServer, args: UriArgs) -> None:
        optimization = optimizations.by_uri.get(args.uri)
        report = optimization.report if optimization else None
        if report is None or report.winner is None:
            return
        state = ls.state(args.uri)
        root = optimizations.root(state) if state is not None else None
        await asyncio.to_thread(api.record_applied, report, root)

    return optimizations
