"""Timings of the catalog layer: first loads (each in a fresh process) and warm lookups.

Run: python bench/catalog_speed.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

FIRST_LOADS = {
    "import prompt_lsp.catalog.*": "pass",
    "models: first lookup_model": "models.lookup_model('openai/gpt-4o-mini')",
    "models: first complete_models('')": "models.complete_models('')",
    "models: first suggest_models": "models.suggest_models('gpt-4o-mnii')",
    "tokens: first lookup_token": "tokens.lookup_token('<|im_start|>')",
    "tokenizer: first count (cl100k_base)": "tokenizer.count_tokens('hello', 'gpt-4')",
    "tokenizer: first count (o200k_base)": "tokenizer.count_tokens('hello', 'gpt-4o')",
    "gguf: embedded_model_info (first chunk)": "gguf.embedded_model_info()",
    "gguf: embedded_model_path (assembled)": "gguf.embedded_model_path()",
}

_PRELUDE = "from prompt_lsp.catalog import gguf, metrics, models, tokenizer, tokens\n"


def first_load(statement: str) -> float:
    """Milliseconds `statement` takes in a fresh interpreter (imports excluded except the first)."""
    code = (
        "import time\n"
        "t0 = time.perf_counter()\n"
        f"{_PRELUDE if statement == 'pass' else ''}"
        "t1 = time.perf_counter()\n"
        f"{_PRELUDE if statement != 'pass' else ''}"
        "t2 = time.perf_counter()\n"
        f"{statement}\n"
        "t3 = time.perf_counter()\n"
        "print((t1 - t0) + (t3 - t2))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout) * 1000


def best_of(
    fn: Callable[[], object], runs: int = 20, before: Callable[[], object] | None = None
) -> float:
    """Best wall time of `fn` in milliseconds, calling `before` (e.g. a cache clear) each time."""
    best = float("inf")
    for _ in range(runs):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    for label, statement in FIRST_LOADS.items():
        print(f"{label:45s} {first_load(statement):8.1f} ms")

    from prompt_lsp.catalog import models, tokenizer

    models.complete_models("warm")
    for prefix in ("", "g", "z", "claude", "openai/"):
        ms = best_of(
            lambda p=prefix: models.complete_models(p), before=models._complete.cache_clear
        )
        print(f"complete_models({prefix!r}) uncached        {ms:8.3f} ms")
    ms = best_of(
        lambda: models.lookup_model("openai/gpt-4o-mini"), before=models.lookup_model.cache_clear
    )
    print(f"{'lookup_model uncached':45s} {ms:8.3f} ms")
    ms = best_of(lambda: models.suggest_models("gpt-4o-mnii"), before=models._suggest.cache_clear)
    print(f"{'suggest_models uncached (bare id)':45s} {ms:8.3f} ms")
    ms = best_of(
        lambda: models.suggest_models("openai/gpt-4o-mnii"), before=models._suggest.cache_clear
    )
    print(f"{'suggest_models uncached (provider/id)':45s} {ms:8.3f} ms")
    text = "Summarize the following article in {{ sentences }} sentences: <start>\n" * 2000
    for model in ("gpt-4", "gpt-4o"):
        tokenizer.count_tokens("warm", model)
        ms = best_of(
            lambda m=model: tokenizer.count_tokens(text, m), 5, tokenizer._count.cache_clear
        )
        print(f"count_tokens 2,000 lines ({model}) uncached       {ms:8.2f} ms")


if __name__ == "__main__":
    main()
