"""Rendering a prompt into the messages sent to the model."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError

from prompt_lsp.format.body import split_messages
from prompt_lsp.format.limits import MAX_TEXT, BoundedEnvironment, RenderLimitError, watchdog
from prompt_lsp.format.model import PromptDocument
from prompt_lsp.format.template import analyse_template_cached
from prompt_lsp.format.text import split_lines


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


class RenderError(Exception):
    """The template could not be rendered with the given variables (message says why)."""


class RenderLimitExceeded(RenderError):
    """The template asked for more time or memory than a render may use (see format.limits)."""


@functools.cache
def _strict_environment() -> BoundedEnvironment:
    # optimized=False: the constant-folding optimizer rewrites the tree it compiles (and would
    # compute `9**(9**9)` unchecked), and the tree here is shared with the analysis (see
    # _compiled); rendering gives the same text
    return BoundedEnvironment(
        undefined=StrictUndefined, keep_trailing_newline=True, optimized=False
    )


@functools.lru_cache(maxsize=16)
def _compiled(body: str, first_line: int) -> Template:
    """The body compiled once: an evaluation renders it for every example, and the checks render
    it on every check. It is compiled from the tree `parse` already built for this body (its
    analysis is cached), which saves lexing and parsing a long prompt a second time."""
    tree = analyse_template_cached(body, first_line).ast
    return _strict_environment().from_string(tree if tree is not None else body)


def render_messages(doc: PromptDocument, variables: dict[str, Any]) -> list[ChatMessage]:
    """Render the body with `input.default` merged under `variables`, then split at role markers
    (after rendering, so a loop may emit few-shot `user:`/`assistant:` turns)."""
    text, _ = _render(doc, variables, None)
    return split_rendered(text)


def render_text(doc: PromptDocument, variables: dict[str, Any], max_chars: int) -> tuple[str, bool]:
    """The rendered body as one text, cut after about `max_chars` characters, and whether it was
    cut. For measuring on the typing path: a loop typed half-way (`range(100000)` around a long
    input) must not build gigabytes."""
    return _render(doc, variables, max_chars)


def split_rendered(text: str) -> list[ChatMessage]:
    """The messages of a rendered body (see `render_messages`)."""
    messages = [ChatMessage(m.role, m.text) for m in split_messages(split_lines(text), 0)]
    return [m for m in messages if m.content] or [ChatMessage("user", "")]


def _render(
    doc: PromptDocument, variables: dict[str, Any], max_chars: int | None
) -> tuple[str, bool]:
    """Rendered within format.limits' bounds: a template over them raises RenderLimitExceeded."""
    values = {**doc.defaults, **variables}
    try:
        template = _compiled(doc.body, doc.body_start_line)
        with watchdog():
            return _generate(template, values, max_chars)
    except RenderLimitError as err:
        raise RenderLimitExceeded(f"Rendering stopped: {err}.") from err
    except TemplateError as err:
        raise RenderError(
            str(err.message if hasattr(err, "message") and err.message else err)
        ) from err
    except (RecursionError, MemoryError) as err:
        what = "it nests too deeply" if isinstance(err, RecursionError) else "out of memory"
        raise RenderLimitExceeded(f"Rendering stopped: {what}.") from err
    except Exception as err:  # a filter raising on odd input, a sandbox violation
        raise RenderError(f"{type(err).__name__}: {err}") from err


def _generate(
    template: Template, values: dict[str, Any], max_chars: int | None
) -> tuple[str, bool]:
    """The text, cut after `max_chars` if given; past MAX_TEXT without a cut, a limit error."""
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(values):
        chunks.append(chunk)
        size += len(chunk)
        if max_chars is not None and size > max_chars:
            return "".join(chunks), True
        if size > MAX_TEXT:
            raise RenderLimitError(f"the text is over {MAX_TEXT:,} characters")
    return "".join(chunks), False
