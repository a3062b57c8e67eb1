"""(being written)"""

from __future__ import annotations

from prompt_lsp.server.diagnostics import DiagnosticsScheduler
from prompt_lsp.server.server import PromptServer


def register(ls: PromptServer, scheduler: DiagnosticsScheduler) -> None:
    del ls, scheduler
