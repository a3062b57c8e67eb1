"""The pygls adapter: one module per feature, all registered on one `PromptServer`."""

from __future__ import annotations

import logging
import sys

from prompt_lsp.server.server import PromptServer


def create_server() -> PromptServer:
    from prompt_lsp.server import (
        actions,
        completion,
        diagnostics,
        evaluate,
        hover,
        inlay,
        lifecycle,
        navigation,
        structure,
    )

    ls = PromptServer()
    scheduler = diagnostics.register(ls)
    lifecycle.register(ls, scheduler)
    completion.register(ls)
    hover.register(ls)
    navigation.register(ls)
    structure.register(ls)
    actions.register(ls, scheduler)
    inlay.register(ls)
    evaluate.register(ls, scheduler)
    return ls


def run_server(
    host: str | None = None, port: int | None = None, log_file: str | None = None
) -> None:
    """Serve over stdio, or TCP when `port` is given. Logs go to stderr or `log_file`, never stdout."""
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    logging.basicConfig(
        level=logging.WARNING, handlers=[handler], format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("prompt_lsp").setLevel(logging.INFO)
    ls = create_server()
    if port is not None:
        ls.start_tcp(host or "127.0.0.1", port)
    else:
        ls.start_io()
