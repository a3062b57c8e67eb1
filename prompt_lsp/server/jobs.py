"""What the long jobs started from the editor (Evaluate, Optimize) share: the document a
command names, the guards before a start, and a cancellable `$/progress`."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from prompt_lsp.server.server import PromptServer
    from prompt_lsp.server.state import DocumentState


@dataclass
class Job:
    """A long job on one prompt document: its task while it runs, and its cancel event."""

    task: asyncio.Task | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


def cancel_job(ls: PromptServer, job: Job | None, name: str) -> None:
    """Cancel `job`, or tell the user no `name` ("evaluation", …) of this prompt runs."""
    if job is None or not job.running:
        ls.show_to_client(f"No {name} of this prompt is running.")
        return
    job.cancel.set()


def open_state(ls: PromptServer, uri: str) -> DocumentState:
    """The open prompt a command names; else the user is told, and ValueError raised."""
    state = ls.state(uri)
    if state is None:
        message = f"{uri} is not an open .prompt document: open it in the editor first."
        ls.show_to_client(message, types.MessageType.Warning)
        raise ValueError(message)
    return state


def may_start(ls: PromptServer, state: DocumentState, job: Job, name: str) -> bool:
    """False (and the user told why) while `job` runs on this prompt, or when the prompt has
    no file yet: `name` names the job ("evaluation", "optimisation")."""
    if job.running:
        ls.show_to_client(f"An {name} of this prompt is already running.")
        return False
    if state.path is None:
        ls.show_to_client(
            f"Save the prompt to a file first: {name} needs its folder.",
            types.MessageType.Warning,
        )
        return False
    return True


async def begin_progress(
    ls: PromptServer, kind: str, title: str, cancel: asyncio.Event
) -> str | None:
    """A cancellable `$/progress` titled `title`, whose cancel button sets `cancel`; None when
    the client shows no progress (or refuses the token)."""
    window = ls.client_capabilities.window
    if not (window and window.work_done_progress):
        return None
    token = f"prompt-lsp-{kind}-{uuid.uuid4().hex[:12]}"
    try:
        await ls.work_done_progress.create_async(token)
    except Exception as err:
        ls.log_to_client(f"work done progress refused: {err!r}")
        return None
    ls.work_done_progress.begin(
        token, types.WorkDoneProgressBegin(title=title, cancellable=True, percentage=0)
    )
    future = ls.work_done_progress.tokens.get(token)
    if future is not None:
        future.add_done_callback(lambda f: cancel.set() if f.cancelled() else None)
    return token
