"""Rendering Dotprompt and Prompty files by their own rules, with their own libraries.

- Dotprompt: Google's `dotpromptz` renders the whole file (front matter, Picoschema, helpers,
  partials `_name.prompt` beside the file) into its messages.
- Prompty: Jinja2 as Prompty's runtime sets it up (sandboxed, a missing variable renders empty,
  the trailing newline kept) or Mustache through `chevron`, then Prompty's chat parser: a line
  `role:` or `role[attr=value]:` starts a message, text before the first one is a system message,
  each message's text loses only its leading and trailing newlines.

Roles map to litellm's: Dotprompt's `model` is `assistant`; `developer` and `tool` stay.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import re
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prompt_lsp.format.body import PROMPTY_ROLE_MARKER
from prompt_lsp.format.language import Dialect, TemplateLanguage
from prompt_lsp.format.model import PromptDocument
from prompt_lsp.format.partials import PartialFiles

ROLE_MAP = {"model": "assistant"}
T = TypeVar("T")


class FormatRenderError(Exception):
    """The template could not be rendered by its format's own library (message says why)."""


@dataclass(frozen=True)
class RenderedMessage:
    """One message as the format's own tool produced it, roles already mapped to litellm's."""

    role: str
    text: str
    media: tuple[str, ...] = ()  # Dotprompt `{{media url=…}}` parts, in order
    metadata: dict[str, Any] = field(default_factory=dict)  # Prompty's `user[name="Alice"]:`


def uses_format_renderer(doc: PromptDocument) -> bool:
    """Whether `doc` renders here rather than with our own strict Jinja."""
    fmt = doc.template_format
    return fmt.dialect is not Dialect.PROMPT or fmt.language is not TemplateLanguage.JINJA


def render_document(
    doc: PromptDocument, variables: Mapping[str, Any], max_chars: int | None = None
) -> list[RenderedMessage]:
    """The messages of `doc` rendered with `variables` (over its `input.default`)."""
    values = {**doc.defaults, **variables}
    fmt = doc.template_format
    if fmt.language is TemplateLanguage.HANDLEBARS:
        return render_dotprompt(doc.text, values, partials=PartialFiles(doc.path))
    text = render_prompty_text(doc.body, values, fmt.language, max_chars)
    if fmt.dialect is Dialect.PROMPTY:
        return parse_prompty(text)
    from prompt_lsp.format.render import split_rendered  # our own role rules

    return [RenderedMessage(m.role, m.content) for m in split_rendered(text)]


# ---------------------------------------------------------------- Dotprompt


def render_dotprompt(
    source: str,
    values: Mapping[str, Any],
    *,
    partials: PartialFiles | Mapping[str, str] | None = None,
    context: Mapping[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    schemas: Mapping[str, Any] | None = None,
) -> list[RenderedMessage]:
    """`source`, a whole Dotprompt file, rendered by dotpromptz; `context` is what `@name` reads
    (`@state`, `@auth`), `history` the conversation `{{history}}` inserts, `schemas` the named
    schemas Picoschema may refer to (an application registers them)."""
    from dotpromptz.dotprompt import Dotprompt
    from dotpromptz.typing import DataArgument

    def resolve(name: str) -> str | None:
        if isinstance(partials, PartialFiles):
            return partials.read(name)
        return None

    defined = dict(partials) if isinstance(partials, Mapping) else {}
    dotprompt = Dotprompt(
        helpers={"log": _quiet_log},  # Handlebars' `log` prints to stdout: the server's channel
        partials=defined,
        partial_resolver=resolve if isinstance(partials, PartialFiles) else None,
        schemas=dict(schemas) if schemas else None,
    )
    data: dict[str, Any] = {"input": dict(values)}
    if context:
        data["context"] = dict(context)
    if history:
        data["messages"] = history
    from prompt_lsp.format.limits import watchdog

    try:
        with watchdog():  # bounded in time and memory, as our own Jinja renders are
            rendered = _run(dotprompt.render(source, DataArgument(**data)))
    except BaseException as err:  # noqa: BLE001 - an ExceptionGroup from its task group, too
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        raise FormatRenderError(_reason(err)) from None
    return [_from_dotprompt(m) for m in rendered.messages]


def _quiet_log(args: list[Any], options: Any) -> str:
    return ""


def _from_dotprompt(message: Any) -> RenderedMessage:
    texts: list[str] = []
    media: list[str] = []
    for part in message.content:
        text = getattr(part, "text", None)
        if isinstance(text, str):
            texts.append(text)
            continue
        medium = getattr(part, "media", None)
        url = getattr(medium, "url", None)
        if isinstance(url, str):
            media.append(url)
    role = str(getattr(message.role, "value", message.role))
    return RenderedMessage(ROLE_MAP.get(role, role), "".join(texts), tuple(media))


def _reason(err: BaseException) -> str:
    """The innermost message of an error (dotpromptz wraps them in exception groups)."""
    while getattr(err, "exceptions", None):  # an ExceptionGroup
        err = err.exceptions[0]  # type: ignore[attr-defined]
    text = str(err).strip()
    return text or type(err).__name__


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, also when this thread already runs
    an event loop (then in a helper thread: it must not block that loop's own work)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


# ---------------------------------------------------------------- Prompty


def render_prompty_text(
    body: str, values: Mapping[str, Any], language: TemplateLanguage, max_chars: int | None = None
) -> str:
    """The body rendered as Prompty's runtime renders it (`jinja2` or `mustache`)."""
    if language is TemplateLanguage.MUSTACHE:
        import chevron

        from prompt_lsp.format.limits import watchdog

        try:
            with watchdog():
                return chevron.render(body, dict(values))
        except Exception as err:
            raise FormatRenderError(f"{type(err).__name__}: {err}") from None
    from jinja2 import TemplateError

    from prompt_lsp.format.limits import MAX_TEXT, RenderLimitError, watchdog

    limit = MAX_TEXT if max_chars is None else max_chars
    try:
        template = _prompty_jinja().from_string(body)
        chunks: list[str] = []
        size = 0
        with watchdog():
            for chunk in template.generate(**values):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    if max_chars is None:
                        raise RenderLimitError(f"the text is over {MAX_TEXT:,} characters")
                    break
        return "".join(chunks)
    except RenderLimitError as err:
        raise FormatRenderError(f"Rendering stopped: {err}.") from None
    except TemplateError as err:
        raise FormatRenderError(str(getattr(err, "message", None) or err)) from None
    except (RecursionError, MemoryError) as err:
        raise FormatRenderError(f"Rendering stopped: {type(err).__name__}.") from None
    except Exception as err:  # a filter raising on odd input, a sandbox violation
        raise FormatRenderError(f"{type(err).__name__}: {err}") from None


@functools.cache
def _prompty_jinja() -> Any:
    """Prompty's Jinja environment (an immutable sandbox, the default lenient undefined, the
    trailing newline kept) within format.limits' bounds."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from prompt_lsp.format.limits import BoundedEnvironment

    class PromptyEnvironment(BoundedEnvironment, ImmutableSandboxedEnvironment):
        pass

    return PromptyEnvironment(keep_trailing_newline=True, optimized=False)


def parse_prompty(rendered: str) -> list[RenderedMessage]:
    """Prompty's chat parser: split rendered text at role boundary lines."""
    messages: list[RenderedMessage] = []
    buffer: list[str] = []
    role, attributes = "system", {}
    for line in rendered.splitlines():
        match = PROMPTY_ROLE_MARKER.match(line.strip())
        if match:
            if buffer:
                messages.append(_prompty_message(role, buffer, attributes))
                buffer = []
            role = match.group(1).lower()
            attributes = _attributes(match.group(2)) if match.group(2) else {}
            continue
        buffer.append(line)
    if buffer:
        messages.append(_prompty_message(role, buffer, attributes))
    return messages


def _prompty_message(role: str, lines: list[str], attributes: dict[str, Any]) -> RenderedMessage:
    metadata = {k: v for k, v in attributes.items() if k != "nonce"}
    return RenderedMessage(ROLE_MAP.get(role, role), "\n".join(lines).strip("\n"), (), metadata)


_ATTRIBUTE = re.compile(r'(\w+)\s*=\s*"?([^",]*)"?')


def _attributes(raw: str) -> dict[str, Any]:
    """`[name="Alice", id=7]`: values coerced as Prompty does (booleans, integers, floats)."""
    result: dict[str, Any] = {}
    for match in _ATTRIBUTE.finditer(raw.strip("[]")):
        text = match.group(2).strip()
        value: Any = text
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(text)
                    break
                except ValueError:
                    continue
        result[match.group(1)] = value
    return result
