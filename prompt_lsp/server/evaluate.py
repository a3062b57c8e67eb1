"""Evaluate in the editor: code lenses with scores and deltas, the run commands, work-done
progress, per-example diagnostics, and the version comparison on hover.

Runs happen as background tasks on the event loop (model calls are async; the local model and
code tests run in threads), so typing, completion and diagnostics stay responsive."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
from lsprotocol import types

from prompt_lsp.checks.examples import examples_range
from prompt_lsp.evaluation import api
from prompt_lsp.evaluation.api import EvalOptions, EvalSetupError, HistoryStamp, load_examples
from prompt_lsp.format.examples import Example, examples_path
from prompt_lsp.format.model import Position, Range
from prompt_lsp.server.clients import client_features
from prompt_lsp.server.diagnostics import DiagnosticsScheduler
from prompt_lsp.server.documents import EXAMPLE_SUFFIXES, Evaluation, EvaluationNotes, fs_path
from prompt_lsp.server.evaluate_text import (
    compare_document,
    comparison_markdown,
    example_lens_title,
    rendered_document,
    run_example_document,
    score_title,
)
from prompt_lsp.server.jobs import begin_progress, cancel_job, may_start, open_state
from prompt_lsp.server.server import PromptServer, contained
from prompt_lsp.server.state import DocumentState

if TYPE_CHECKING:
    from prompt_lsp.evaluation.api import RunReport

EVALUATE = "prompt-lsp.evaluate"
CANCEL = "prompt-lsp.cancelEvaluation"
RUN_EXAMPLE = "prompt-lsp.runExample"
SHOW_RENDERED = "prompt-lsp.showRendered"
COMPARE = "prompt-lsp.compareWithPrevious"
STATUS = "prompt-lsp.evaluationStatus"
SCORE_NOTIFICATION = "promptLsp/score"
REFRESH_EVERY_S = 0.3  # lens refreshes while running, at most this often
LOG_PROGRESS_EVERY_S = (
    5.0  # progress as log messages (clients without $/progress), at most this often
)
KNOWN_TEXTS = 500  # history answers kept, one per text seen


@attrs.define
class UriArgs:
    uri: str


@attrs.define
class ExampleArgs:
    uri: str
    example: str | None = None  # the example's id (or 1-based number); default the first


class Evaluations:
    def __init__(self, ls: PromptServer, scheduler: DiagnosticsScheduler) -> None:
        self.ls = ls
        self.scheduler = scheduler
        self.documents = ls.documents
        # (uri, text sha) -> (history stamp, RunReport | None), oldest first
        self.known: dict[tuple[str, str], tuple[HistoryStamp | None, RunReport | None]] = {}
        self._last_refresh = 0.0

    def of(self, uri: str) -> Evaluation:
        return self.documents.record(uri).evaluation

    def running(self, uri: str) -> Evaluation | None:
        record = self.documents.existing(uri)
        return record.evaluation if record is not None else None

    # ---------------------------------------------------------------- history

    def report_for(self, state: DocumentState) -> RunReport | None:
        """The latest run of exactly this text, from history (no model call). Answers are kept
        until the history database changes, so a run made elsewhere (the CLI, another editor)
        shows up at the next request."""
        if state.path is None:
            return None
        key = (state.uri, api.text_version(state.doc.text))
        stamp = self._history_stamp(state)
        cached = self.known.get(key)
        if cached is not None and cached[0] == stamp:
            report = cached[1]
        else:
            report = None
            if stamp is not None:
                try:
                    report = api.last_report(state.path, state.doc.text, self.root(state))
                except Exception as err:  # a broken history must not break the editor
                    self.ls.log_to_client(f"history lookup failed: {err!r}")
            self._remember(key, stamp, report)
        if report is not None:
            evaluation = self.of(state.uri)
            if evaluation.report is None or report.started_at >= evaluation.report.started_at:
                evaluation.report = report  # shown with "(edited since)" after the next edit
        return report

    def _remember(
        self, key: tuple[str, str], stamp: HistoryStamp | None, report: RunReport | None
    ) -> None:
        self.known.pop(key, None)
        self.known[key] = (stamp, report)
        while len(self.known) > KNOWN_TEXTS:
            self.known.pop(next(iter(self.known)))

    def _history_stamp(self, state: DocumentState) -> HistoryStamp | None:
        return api.history_stamp(state.path, self.root(state))

    def shown_report(self, state: DocumentState) -> tuple[RunReport | None, bool]:
        """The run to show for this text: its own (from history, by hash), else the last run
        made in this session (a cancelled or failed one, or one of an earlier text)."""
        current = self.report_for(state)
        if current is not None:
            return current, False
        evaluation = self.running(state.uri)
        if evaluation is None or evaluation.report is None:
            return None, False
        return evaluation.report, evaluation.report.version != api.text_version(state.doc.text)

    def root(self, state: DocumentState) -> Path | None:
        setting = self.ls.settings.history_path
        if setting:
            return Path(setting).expanduser()
        return self.ls.workspace_root(state.path)

    # ---------------------------------------------------------------- refresh

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_refresh < REFRESH_EVERY_S:
            return
        self._last_refresh = now
        self.ls.refresh_views(inlay_hints=force)

    # ---------------------------------------------------------------- running

    async def start(self, state: DocumentState) -> None:
        evaluation = self.of(state.uri)
        if not may_start(self.ls, state, evaluation, "evaluation"):
            return
        evaluation.cancel = asyncio.Event()
        evaluation.done = evaluation.failed = 0
        evaluation.total = _example_count(state)
        title = f"Evaluating {_name_of(state)}"
        token = await begin_progress(self.ls, "eval", title, evaluation.cancel)
        if token is None:  # the client shows no $/progress: say it started, in words
            self.ls.show_to_client(
                f"Evaluating {_name_of(state)} on {evaluation.total} example"
                f"{'s' if evaluation.total != 1 else ''} ({_model_of(state, self.ls.settings.default_model)})…"
            )
        evaluation.task = self.ls.spawn(self._run(state, evaluation, token))
        self.refresh(force=True)

    async def _run(self, state: DocumentState, evaluation: Evaluation, token: str | None) -> None:
        logged_at = time.monotonic()

        def on_progress(event) -> None:
            nonlocal logged_at
            evaluation.done, evaluation.total, evaluation.failed = (
                event.done,
                event.total,
                event.failed,
            )
            eta = f" · {event.eta_s:.0f} s left" if event.eta_s is not None else ""
            failed = f" · {event.failed} failed" if event.failed else ""
            if token is not None:
                self.ls.work_done_progress.report(
                    token,
                    types.WorkDoneProgressReport(
                        message=f"{event.done}/{event.total}{failed}{eta}",
                        percentage=int(100 * event.done / event.total) if event.total else 100,
                        cancellable=True,
                    ),
                )
            elif time.monotonic() - logged_at >= LOG_PROGRESS_EVERY_S:
                logged_at = time.monotonic()
                self.ls.log_to_client(
                    f"Evaluating {_name_of(state)}: {event.done}/{event.total}{failed}{eta}",
                    types.MessageType.Info,
                )
            self.refresh()

        message = "done"
        try:
            report = await api.evaluate(
                state.path, state.doc.text, self.options(state), on_progress, evaluation.cancel
            )
        except EvalSetupError as err:
            message = f"cannot evaluate: {err}"
            self.ls.show_to_client(f"prompt-lsp: {message}", types.MessageType.Error)
        except asyncio.CancelledError:
            message = "cancelled"
            if token is None:
                self.ls.show_to_client(f"Evaluation of {_name_of(state)} cancelled.")
            raise
        except Exception as err:
            message = f"evaluation failed: {err!r}"
            self.ls.log_to_client(message, types.MessageType.Error)
            self.ls.show_to_client(f"prompt-lsp: {message}", types.MessageType.Error)
        else:
            evaluation.report = report
            self._remember((state.uri, report.version), self._history_stamp(state), report)
            message = score_title(report, edited=False)
            self._publish_example_diagnostics(state, report)
            self._tell_score(state, report)
        finally:
            if token is not None:
                self.ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
                self.ls.work_done_progress.tokens.pop(token, None)
            evaluation.task = None
            self.refresh(force=True)

    def options(self, state: DocumentState, example_ids: list[str] | None = None) -> EvalOptions:
        """Editor settings as run options; the file's front matter wins over them."""
        settings = self.ls.settings
        run = state.doc.settings.run
        return EvalOptions(
            default_model=settings.default_model,
            template_language=settings.template_language,
            concurrency=None if run.concurrency is not None else settings.concurrency,
            use_cache=settings.cache if run.cache is None else run.cache,
            workspace_root=self.root(state),
            example_ids=example_ids,
        )

    # ---------------------------------------------------------------- results in the editor

    def _publish_example_diagnostics(self, state: DocumentState, report: RunReport) -> None:
        """Information diagnostics on failed and regressed examples (regressions within the
        run-to-run noise that repeats measured are left out); the next run replaces them."""
        examples = load_examples(state.doc, state.path)
        by_id = {e.id: e for e in examples.examples} if examples else {}
        notes: list[tuple[Example | None, str]] = []
        for result in report.results:
            if result.error:
                notes.append((by_id.get(result.id), f"example {result.id} failed: {result.error}"))
        comparison = report.comparison
        if comparison is not None:
            for change in comparison.regressed:
                if not change.beyond_noise:
                    continue
                notes.append(
                    (
                        by_id.get(change.example_id),
                        f"example {change.example_id} regressed: {change.metric} "
                        f"{change.before:.3f} → {change.after:.3f}",
                    )
                )
        in_prompt = []
        in_file = []
        rng = state.positions.range(examples_range(state.doc))
        source = examples.source if examples else None
        for example, text in notes:
            related = None
            if example is not None and source is not None:
                line_range = types.Range(
                    types.Position(example.line, 0), types.Position(example.line, 0)
                )
                related = [
                    types.DiagnosticRelatedInformation(
                        types.Location(source.as_uri(), line_range), text
                    )
                ]
                in_file.append(_info(line_range, text, "evaluation"))
            elif example is not None:  # inline examples: the line is in the prompt
                line = state.positions.range(
                    Range.of(example.line, 0, end=len(state.doc.lines[example.line]))
                )
                in_prompt.append(_info(line, text, "evaluation"))
                continue
            in_prompt.append(_info(rng, text, "evaluation", related))
        self.documents.set_notes(
            state.uri,
            EvaluationNotes(
                version=report.version,
                in_prompt=in_prompt,
                examples_uri=source.as_uri() if source is not None else None,
                in_examples=in_file,
            ),
        )

    def _tell_score(self, state: DocumentState, report: RunReport) -> None:
        """The score after a run: as `promptLsp/score` to a client that handles it (a status
        bar, the Neovim plugin), else as a message every client shows."""
        title = score_title(report, edited=False)
        if client_features(self.ls).score_notification:
            tooltip = f"{report.model} · {report.file} · version {report.version[:8]}"
            self.ls.protocol.notify(
                SCORE_NOTIFICATION, {"uri": state.uri, "text": title, "tooltip": tooltip}
            )
        else:
            self.ls.show_to_client(f"{_name_of(state)}: {title}")

    # ---------------------------------------------------------------- lenses

    def prompt_lenses(self, state: DocumentState) -> list[types.CodeLens]:
        evaluation = self.running(state.uri)
        top = types.Range(types.Position(0, 0), types.Position(0, 0))
        args = [{"uri": state.uri}]

        def lens(title: str, command: str, arguments: list | None = None) -> types.CodeLens:
            return types.CodeLens(
                top, types.Command(title=title, command=command, arguments=arguments or args)
            )

        if evaluation is not None and evaluation.running:
            total = evaluation.total or "?"
            failed = f", {evaluation.failed} failed" if evaluation.failed else ""
            return [
                lens(f"Evaluating {evaluation.done}/{total}{failed}…", STATUS),
                lens("Cancel", CANCEL),
            ]
        lenses = []
        shown, edited = self.shown_report(state)
        if shown is not None:
            lenses.append(lens(score_title(shown, edited), COMPARE))
        count = _example_count(state)
        if count:
            model = _model_of(state, self.ls.settings.default_model)
            lenses.append(
                lens(f"▶ Evaluate ({count} example{'s' if count != 1 else ''} · {model})", EVALUATE)
            )
        lenses.append(lens("Show rendered prompt", SHOW_RENDERED))
        return lenses

    def readers_of(self, uri: str) -> list[DocumentState]:
        """The open prompts whose examples file is `uri`."""
        path = fs_path(uri)
        if path is None:
            return []
        path = path.resolve()
        readers = []
        for state in self.ls.open_states():
            target = examples_path(state.doc, state.path)
            if target is not None and target.resolve() == path:
                readers.append(state)
        return readers

    def example_at(self, uri: str, line: int) -> tuple[DocumentState, Example] | None:
        """The example on `line` of the examples file `uri`, with a prompt that reads it."""
        for state in self.readers_of(uri):
            examples = load_examples(state.doc, state.path)
            for example in examples.examples if examples else ():
                if example.line == line:
                    return state, example
        return None

    def example_lenses(self, uri: str) -> list[types.CodeLens]:
        """Per-example scores in an examples file, from the last run of a prompt that reads it."""
        for state in self.readers_of(uri):
            evaluation = self.running(state.uri)
            report = self.report_for(state) or (evaluation.report if evaluation else None)
            examples = load_examples(state.doc, state.path)
            if report is None or examples is None:
                continue
            by_id = {e.id: e for e in examples.examples}
            lenses = []
            for result in report.results:
                example = by_id.get(result.id)
                if example is None or result.repeat:
                    continue
                line = types.Range(types.Position(example.line, 0), types.Position(example.line, 0))
                title = example_lens_title(report, result)
                lenses.append(
                    types.CodeLens(
                        line,
                        types.Command(
                            title=title,
                            command=RUN_EXAMPLE,
                            arguments=[{"uri": state.uri, "example": result.id}],
                        ),
                    )
                )
            return lenses
        return []

    # ---------------------------------------------------------------- hover

    def hover(self, ls: PromptServer, state: DocumentState, pos: Position) -> str | None:
        if not _is_comparison_spot(state, pos):
            return None
        report, edited = self.shown_report(state)
        return comparison_markdown(report, edited, client_features(ls).evaluate_hint)

    # ---------------------------------------------------------------- documents to show

    async def show(self, state: DocumentState, name: str, text: str) -> None:
        if state.path is None:
            self.ls.show_to_client(text)
            return
        try:
            target = await asyncio.to_thread(
                api.write_output, state.path, self.root(state), name, text
            )
        except (api.UnsafePathError, OSError) as err:
            self.ls.show_to_client(f"prompt-lsp: {err}", types.MessageType.Warning)
            return
        window = self.ls.client_capabilities.window
        if window and window.show_document and window.show_document.support:
            await self.ls.window_show_document_async(
                types.ShowDocumentParams(uri=target.as_uri(), take_focus=True)
            )
        else:
            self.ls.show_to_client(f"Written to {target}")


def _info(rng: types.Range, message: str, code: str, related=None) -> types.Diagnostic:
    return types.Diagnostic(
        range=rng,
        message=message,
        severity=types.DiagnosticSeverity.Information,
        code=code,
        source="prompt-lsp",
        related_information=related,
    )


def _is_comparison_spot(state: DocumentState, pos: Position) -> bool:
    if pos.line == 0:
        return True
    for key in ("name", "metrics"):
        entry = state.doc.entry(key)
        if entry is not None and entry.key_range is not None and entry.key_range.contains(pos):
            return True
    return False


def _example_count(state: DocumentState) -> int:
    examples = load_examples(state.doc, state.path)
    return len(examples.examples) if examples else 0


def _name_of(state: DocumentState) -> str:
    return state.doc.name or (state.path.stem if state.path else "prompt")


def _model_of(state: DocumentState, default_model: str | None) -> str:
    return state.doc.settings.model_or_default(default_model)


def register(ls: PromptServer, scheduler: DiagnosticsScheduler) -> Evaluations:
    evaluations = Evaluations(ls, scheduler)
    ls.hover_providers.append(evaluations.hover)

    @ls.feature(types.TEXT_DOCUMENT_CODE_LENS)
    @contained(default=None)
    async def code_lens(
        ls: PromptServer, params: types.CodeLensParams
    ) -> list[types.CodeLens] | None:
        uri = params.text_document.uri
        if uri.endswith(EXAMPLE_SUFFIXES):
            return await asyncio.to_thread(evaluations.example_lenses, uri) or None
        state = ls.state(uri)
        if state is None:
            return None

        def all_lenses() -> list[types.CodeLens]:
            found = evaluations.prompt_lenses(state)
            for provider in ls.lens_providers:
                found += provider(state)
            return found

        return await asyncio.to_thread(all_lenses)

    @ls.command(EVALUATE)
    @contained()
    async def evaluate(ls: PromptServer, args: UriArgs) -> None:
        await evaluations.start(open_state(ls, args.uri))

    @ls.command(CANCEL)
    @contained()
    def cancel(ls: PromptServer, args: UriArgs) -> None:
        cancel_job(ls, evaluations.running(args.uri), "evaluation")

    @ls.command(STATUS)
    @contained()
    def status(ls: PromptServer, args: UriArgs) -> None:
        evaluation = evaluations.running(args.uri)
        if evaluation is not None and evaluation.running:
            ls.show_to_client(
                f"Evaluating: {evaluation.done}/{evaluation.total} done, {evaluation.failed} failed."
            )

    @ls.command(SHOW_RENDERED)
    @contained()
    async def show_rendered(ls: PromptServer, args: ExampleArgs) -> None:
        state = open_state(ls, args.uri)
        # off the event loop: it reads the examples and renders an untrusted template
        name, text = await asyncio.to_thread(rendered_document, state, args.example)
        await evaluations.show(state, name, text)

    @ls.command(COMPARE)
    @contained()
    async def compare(ls: PromptServer, args: UriArgs) -> None:
        state = open_state(ls, args.uri)
        report = await asyncio.to_thread(evaluations.report_for, state)
        evaluation = evaluations.running(args.uri)
        if report is None and evaluation is not None:
            report = evaluation.report
        if report is None or report.comparison is None:
            ls.show_to_client(
                "Nothing to compare yet: evaluate this prompt, edit it, and evaluate again."
            )
            return
        name, text = compare_document(state, report)
        await evaluations.show(state, name, text)

    @ls.command(RUN_EXAMPLE)
    @contained()
    async def run_example(ls: PromptServer, args: ExampleArgs) -> None:
        state = open_state(ls, args.uri)
        if state.path is None:
            ls.show_to_client("Save the prompt to a file first.", types.MessageType.Warning)
            return
        examples = load_examples(state.doc, state.path)
        if not examples or not examples.examples:
            ls.show_to_client("This prompt has no examples.", types.MessageType.Warning)
            return
        wanted = args.example or examples.examples[0].id
        options = evaluations.options(state, example_ids=[wanted])
        try:
            report = await api.evaluate(state.path, state.doc.text, options)
        except EvalSetupError as err:
            ls.show_to_client(
                f"prompt-lsp: cannot run example {wanted}: {err}", types.MessageType.Error
            )
            return
        name, text = run_example_document(state, report, wanted)
        await evaluations.show(state, name, text)

    return evaluations
