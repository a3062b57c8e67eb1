"""Inlay hints: the token count of each message (after its role marker) and of the whole prompt
(on the first line), for the prompt's model.

The first count loads a tokenizer (up to half a second), so counting runs in a thread and the
result is cached per document version and model.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from lsprotocol import types

from prompt_lsp.catalog.tokenizer import count_tokens, tokenizer_label
from prompt_lsp.format.model import Position, PromptDocument
from prompt_lsp.server.server import PromptServer, contained
from prompt_lsp.server.state import DocumentState


@dataclass(frozen=True)
class Hint:
    position: Position  # code points
    label: str
    tooltip: str


def _label(count: int, exact: bool) -> str:
    unit = "token" if count == 1 else "tokens"
    return f"{count} {unit}" if exact else f"≈ {count} {unit}"


def token_hints(doc: PromptDocument, model: str) -> list[Hint]:
    """Hints for every message and for the whole prompt. Slow on the first call for a tokenizer:
    run it in a thread."""
    if not doc.messages:
        return []
    tokenizer = tokenizer_label(model)
    exact = not tokenizer.startswith("≈")
    counts = [count_tokens(m.text, model) for m in doc.messages]
    total = sum(counts)
    hints = [
        Hint(
            Position(0, len(doc.lines[0])),
            _label(total, exact) + " in all",
            f"The whole prompt: {total} tokens for {model} ({tokenizer}), counted on the "
            "template text before variables are filled in; role markers are not counted.",
        )
    ]
    for message, count in zip(doc.messages, counts, strict=True):
        line = (message.marker_range or message.body_range).start.line
        if line == 0:
            continue  # the first line already holds the total
        hints.append(
            Hint(
                Position(line, len(doc.lines[line])),
                _label(count, exact),
                f"The {message.role} message: {count} tokens for {model} ({tokenizer}).",
            )
        )
    return hints


def model_for(ls: PromptServer, doc: PromptDocument) -> str:
    return doc.settings.model_or_default(ls.settings.default_model)


async def hints_for(ls: PromptServer, state: DocumentState) -> list[Hint]:
    model = model_for(ls, state.doc)
    key = f"inlay.tokens:{model}"
    cached = state.caches.get(key)
    if cached is None:
        cached = await asyncio.to_thread(token_hints, state.doc, model)
        state.caches[key] = cached
    return cached


def register(ls: PromptServer) -> None:
    @ls.feature(types.TEXT_DOCUMENT_INLAY_HINT)
    @contained()
    async def inlay_hint(
        ls: PromptServer, params: types.InlayHintParams
    ) -> list[types.InlayHint] | None:
        state = ls.state(params.text_document.uri)
        if state is None:
            return None
        hints = await hints_for(ls, state)
        positions = state.positions
        start, end = params.range.start, params.range.end
        result = []
        for hint in hints:
            pos = positions.to_client(hint.position)
            if (
                (start.line, start.character)
                <= (pos.line, pos.character)
                <= (end.line, end.character)
            ):
                result.append(
                    types.InlayHint(
                        position=pos, label=hint.label, tooltip=hint.tooltip, padding_left=True
                    )
                )
        return result
