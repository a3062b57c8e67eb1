"""Rendering a prompt into the messages sent to the model."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from prompt_lsp.format.body import split_messages
from prompt_lsp.format.model import PromptDocument
from prompt_lsp.format.text import split_lines


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


class RenderError(Exception):
    """The template could not be rendered with the given variables (message says why)."""


@functools.cache
def _strict_environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)


def render_messages(doc: PromptDocument, variables: dict[str, Any]) -> list[ChatMessage]:
    """Render the body with `input.default` merged under `variables`, then split at role markers
    (after rendering, so a loop may emit few-shot `user:`/`assistant:` turns)."""
    values = {**doc.defaults, **variables}
    try:
        text = _strict_environment().from_string(doc.body).render(values)
    except TemplateError as err:
        raise RenderError(
            str(err.message if hasattr(err, "message") and err.message else err)
        ) from err
    except Exception as err:  # a filter raising on odd input, a sandbox violation
        raise RenderError(f"{type(err).__name__}: {err}") from err
    messages = [ChatMessage(m.role, m.text) for m in split_messages(split_lines(text), 0)]
    return [m for m in messages if m.content] or [ChatMessage("user", "")]
