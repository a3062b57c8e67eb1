"""The pygls adapter: one module per feature, all registered on one `PromptServer`."""

from __future__ import annotations

import gc
import logging
import os
import sys

from prompt_lsp.evaluation.api import THREADS_VARIABLE
from prompt_lsp.server.protocol import BoundedInput
from prompt_lsp.server.server import PromptServer

GIL_SWITCH_INTERVAL_S = 0.001


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
        optimize,
        structure,
    )

    ls = PromptServer()
    scheduler = diagnostics.register(ls)
    lifecycle.register(ls, scheduler)
    completion.register(ls)
    hover.register(ls)
    navigation.register(ls)
    structure.register(ls)
    inlay.register(ls)
    evaluations = evaluate.register(ls, scheduler)
    actions.register(ls, scheduler, evaluations)
    optimize.register(ls)
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
    # The embedded model's worker gets one thread: the other core answers the typing.
    os.environ.setdefault(THREADS_VARIABLE, "1")
    ls = create_server()
    quiet_garbage_collection()
    # Checks and model calls run in worker threads; with the default 5 ms GIL switch interval a
    # request waits in 5 ms steps at each hand-over between the reader thread and the loop.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    if port is not None:
        ls.start_tcp(host or "127.0.0.1", port)
    else:
        ls.start_io(stdin=BoundedInput(sys.stdin.buffer))


def quiet_garbage_collection() -> None:
    """A full collection walks every object (tens of milliseconds with a long prompt's model in
    memory) and stalls whatever thread triggers it, typing included. Objects loaded so far are
    frozen out of collections, automatic full collections are made rare, and the diagnostics
    scheduler collects when the user pauses (`PromptServer.collect_when_idle`)."""
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100_000)
