"""(being written)"""

from __future__ import annotations

from prompt_lsp.server.server import PromptServer


def register(ls: PromptServer) -> None:
    del ls
