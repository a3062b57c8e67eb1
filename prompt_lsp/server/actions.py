"""Quick fixes: the checks' fixes as code actions; creating a missing examples file."""

from __future__ import annotations

from pathlib import Path

import attrs
from lsprotocol import types
from pygls.uris import to_fs_path

from prompt_lsp.checks.findings import Finding, Fix
from prompt_lsp.evaluation import api
from prompt_lsp.server.convert import to_diagnostic
from prompt_lsp.server.diagnostics import DiagnosticsScheduler
from prompt_lsp.server.server import PromptServer, contained
from prompt_lsp.server.state import DocumentState

CREATE_FILE = "prompt-lsp.createExamplesFile"


@attrs.define
class CreateFileArgs:
    uri: str  # the prompt whose examples file it is
    path: str
    content: str


def register(ls: PromptServer, scheduler: DiagnosticsScheduler) -> None:
    @ls.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[
                types.CodeActionKind.QuickFix,
                types.CodeActionKind.Source,
                types.CodeActionKind.RefactorRewrite,
            ]
        ),
    )
    @contained(default=None)
    async def code_action(
        ls: PromptServer, params: types.CodeActionParams
    ) -> list[types.CodeAction] | None:
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        extra = [action for provider in ls.action_providers for action in provider(state, params)]
        findings = await scheduler.quick_findings(state)  # for the text the client has now
        actions = []
        for finding in _findings_for(state, findings, params):
            diagnostic = to_diagnostic(finding, state.positions, state.uri)
            actions += [_action(state, finding, fix, diagnostic) for fix in finding.fixes]
        return actions + extra or None

    @ls.command(CREATE_FILE)
    @contained()
    def create_examples_file(ls: PromptServer, args: CreateFileArgs) -> None:
        path = _examples_file_to_create(ls, args)
        if path is None:
            return
        if path.exists() or path.is_symlink():
            ls.show_to_client(
                f"{path.name} already exists: nothing was overwritten.", types.MessageType.Warning
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "x", encoding="utf-8") as handle:  # never through a new symlink
                handle.write(args.content)
        scheduler.recheck_readers_of(path)
        window = ls.client_capabilities.window
        if window and window.show_document and window.show_document.support:
            ls.spawn(
                ls.window_show_document_async(
                    types.ShowDocumentParams(uri=path.as_uri(), take_focus=True)
                )
            )


def _examples_file_to_create(ls: PromptServer, args: CreateFileArgs) -> Path | None:
    """The file to create, or None after telling the user why not (see
    `api.creatable_examples_file`)."""
    state = ls.state(args.uri)
    prompt = Path(to_fs_path(args.uri)) if args.uri.startswith("file:") else None
    if state is None or prompt is None:
        ls.show_to_client("prompt-lsp: open and save the prompt first.", types.MessageType.Warning)
        return None
    try:
        return api.creatable_examples_file(state.doc, prompt, args.path, ls.workspace_root(prompt))
    except api.UnsafePathError as err:
        ls.show_to_client(f"prompt-lsp: {err}.", types.MessageType.Warning)
        return None


def _findings_for(
    state: DocumentState, findings: list[Finding], params: types.CodeActionParams
) -> list[Finding]:
    """The findings of the current analysis the request is about: those overlapping its range,
    and those equivalent (same code, overlapping range) to a diagnostic the client sent, which
    may have been computed for an earlier version of the text."""
    spans = [state.positions.from_client_range(params.range)]
    codes: set[str] = set()
    for diagnostic in params.context.diagnostics if params.context else []:
        spans.append(state.positions.from_client_range(diagnostic.range))
        if diagnostic.code is not None:
            codes.add(str(diagnostic.code))
    chosen = []
    for finding in findings:
        overlaps = [not (f.start > finding.range.end or f.end < finding.range.start) for f in spans]
        if overlaps[0] or (finding.code in codes and any(overlaps[1:])):
            chosen.append(finding)
    return chosen


def _action(
    state: DocumentState, finding: Finding, fix: Fix, diagnostic: types.Diagnostic
) -> types.CodeAction:
    if fix.create_file is not None:
        # done by the server, so it works in clients without resource operations
        command = types.Command(
            title=fix.title,
            command=CREATE_FILE,
            arguments=[CreateFileArgs(state.uri, str(fix.create_file), fix.file_content)],
        )
        return types.CodeAction(
            fix.title,
            kind=types.CodeActionKind.QuickFix,
            diagnostics=[diagnostic],
            command=command,
            is_preferred=fix.preferred,
        )
    edits = [types.TextEdit(state.positions.range(e.range), e.new_text) for e in fix.edits]
    return types.CodeAction(
        fix.title,
        kind=types.CodeActionKind.QuickFix,
        diagnostics=[diagnostic],
        edit=types.WorkspaceEdit(changes={state.uri: edits}),
        is_preferred=fix.preferred or None,
    )
