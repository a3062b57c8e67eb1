"""The language server with a `scripted/…` litellm provider whose answers depend on the prompt,
for editor tests of Optimize: the reply to `Review: …` is the sentiment word the review contains,
but only when some demonstration in the prompt shows that word as an answer
(`Sentiment: <word>`); otherwise it is "unsure". A first message that says "slowly" makes every
call take 0.2 s."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from prompt_lsp.evaluation import providers
from prompt_lsp.server import run_server

LABELS = ("positive", "negative", "neutral")


def answer(messages: list) -> str:
    prompt = "\n".join(str(m.get("content", "")) for m in messages)
    query = re.findall(r"Review: (.*)", prompt)[-1]
    label = next((word for word in LABELS if word in query), "")
    return label if label and f"Sentiment: {label}" in prompt else "unsure"


def make_handler() -> Any:
    from litellm import CustomLLM
    from litellm.types.utils import Usage

    class NeedsDemonstrations(CustomLLM):
        async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            if "slowly" in str(messages[0].get("content", "")):
                await asyncio.sleep(0.2)
            response = kwargs["model_response"]
            response.choices[0].message.content = answer(messages)
            response.usage = Usage(prompt_tokens=9, completion_tokens=1, total_tokens=10)
            response._hidden_params["response_cost"] = 0.0
            return response

    return NeedsDemonstrations()


def main() -> None:
    # registered when the server first loads litellm (not at start: importing litellm takes
    # seconds, and the real server does not do it before the first model call either)
    sync = providers._sync_provider_map

    def sync_with_scripted(litellm: Any) -> None:
        providers._custom_handlers.setdefault("scripted", make_handler())
        sync(litellm)

    providers._sync_provider_map = sync_with_scripted
    run_server()


if __name__ == "__main__":
    main()
