"""What the connected client can show, so every feature degrades to something it can reach.

Read from the client's declared capabilities, plus two initialization options a plugin may set
for what capabilities cannot say: `codeLens` (the client shows lenses although it does not
declare them, as Neovim 0.7's `vim.lsp.codelens`) and `scoreNotification` (it handles the
`promptLsp/score` notification, as the VS Code extension and the Neovim plugin do)."""

from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types

from prompt_lsp.server.server import PromptServer


@dataclass(frozen=True)
class ClientFeatures:
    code_lens: bool  # shows code lenses (else the actions are only reachable as code actions)
    work_done_progress: bool  # shows $/progress for server-initiated work
    score_notification: bool  # handles promptLsp/score (else the score comes as showMessage)
    markdown_hover: bool  # renders markdown in hovers (else plaintext is sent)
    code_lens_refresh: bool  # can be asked to request lenses again

    @property
    def evaluate_hint(self) -> str:
        """How this client's user starts an evaluation, for hover text."""
        if self.code_lens:
            return "Click **▶ Evaluate** above (or run `prompt-lsp eval FILE`)"
        return "Run the **Evaluate** code action (or `prompt-lsp eval FILE`)"


def _option(ls: PromptServer, name: str) -> bool:
    options = ls.initialization_options
    if not isinstance(options, dict):
        return False
    if options.get(name) is True:
        return True
    nested = options.get("promptLsp")
    return isinstance(nested, dict) and nested.get(name) is True


def client_features(ls: PromptServer) -> ClientFeatures:
    caps = ls.client_capabilities
    text = caps.text_document
    window = caps.window
    workspace = caps.workspace
    hover = text.hover if text else None
    formats = list(hover.content_format or []) if hover else []
    # A client that lists formats gets its first choice; one that lists none gets markdown
    # (the LSP default for clients that predate contentFormat).
    markdown = not formats or formats[0] == types.MarkupKind.Markdown
    return ClientFeatures(
        code_lens=bool(text and text.code_lens) or _option(ls, "codeLens"),
        work_done_progress=bool(window and window.work_done_progress),
        score_notification=_option(ls, "scoreNotification"),
        markdown_hover=markdown,
        code_lens_refresh=bool(
            workspace and workspace.code_lens and workspace.code_lens.refresh_support
        ),
    )


def markdown_to_plaintext(text: str) -> str:
    """Markdown as a plaintext client should show it: no `**`, backticks, fences or table
    rules; table rows as `a  b  c`."""
    lines = []
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("```"):
            continue
        if stripped.startswith("|") and set(stripped) <= set("|-: "):
            continue  # a table's rule line
        if stripped.startswith("|") and stripped.endswith("|"):
            line = "  ".join(cell.strip() for cell in stripped.strip("|").split("|"))
        line = line.replace("**", "").replace("`", "")
        if line.startswith("_") and line.endswith("_") and len(line) > 2:
            line = line[1:-1]
        lines.append(line.rstrip())
    return "\n".join(lines)
