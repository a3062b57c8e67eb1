"""Evaluation throughput figures (prints numbers; not a test).

    python bench/eval_throughput.py [--examples 1000] [--latency 0.1] [--concurrency 16]

1. N examples against a litellm provider with a fixed latency, at the given concurrency,
   through the whole session (render, litellm.acompletion, scoring, cache, history):
   wall time over the ideal N·latency/concurrency (target ≤ 1.15).
2. A fully cached re-run of the same N examples (target under 2 s).
3. The ROUGE scoring rate (fresh pairs per second).
4. The embedded local model's generation speed in tokens per second (if installed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prompt_lsp.evaluation.providers import load_litellm, register_provider  # noqa: E402

PROMPT = """---
model: {model}
config:
  temperature: 0
examples: cases.jsonl
metrics:
  - exact_match
  - rougeL
eval:
  concurrency: {concurrency}
---
system:
You summarize in one sentence.
user:
Summarize item {{{{ n }}}}: {{{{ text }}}}
"""


def fixed_latency_provider(latency_s: float) -> Any:
    load_litellm()  # sets LITELLM_LOCAL_MODEL_COST_MAP before litellm is imported
    from litellm import CustomLLM
    from litellm.types.utils import Usage

    class FixedLatency(CustomLLM):
        async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(latency_s)
            response = kwargs["model_response"]
            response.choices[0].message.content = (
                "A short summary of " + messages[-1]["content"][:40]
            )
            response.usage = Usage(prompt_tokens=30, completion_tokens=12, total_tokens=42)
            response._hidden_params["response_cost"] = 0.0
            return response

    return FixedLatency()


def example_rows(examples: int) -> list[dict[str, Any]]:
    """The bench's examples: the fixed-latency replies (and the mock server's) score 1.0."""
    rows = []
    for i in range(examples):
        text = f"The council approved plan number {i} on Tuesday."
        expected = "A short summary of " + f"Summarize item {i}: {text}"[:40]
        rows.append({"id": f"e{i}", "input": {"n": i, "text": text}, "expected": expected})
    return rows


def write_workspace(
    folder: Path, examples: int, concurrency: int, model: str = "fixed/bench-model"
) -> Path:
    """`bench.prompt` and its `cases.jsonl` in `folder` (a git root)."""
    (folder / ".git").mkdir(parents=True, exist_ok=True)
    rows = example_rows(examples)
    (folder / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = folder / "bench.prompt"
    path.write_text(PROMPT.format(concurrency=concurrency, model=model))
    return path


async def run_eval(path: Path) -> tuple[float, float, Any]:
    """(wall seconds, process CPU seconds, report) of one evaluation."""
    from prompt_lsp.evaluation.session import EvalOptions, evaluate_prompt

    started, cpu = time.perf_counter(), time.process_time()
    report = await evaluate_prompt(path, path.read_text(), EvalOptions())
    return time.perf_counter() - started, time.process_time() - cpu, report


async def raw_litellm(calls: int, concurrency: int) -> float:
    """The same calls straight through litellm.acompletion with a semaphore: the floor the
    engine builds on (litellm's own per-call work included)."""
    litellm = load_litellm()
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            await litellm.acompletion(
                model="fixed/bench-model", messages=[{"role": "user", "content": f"raw {i}"}]
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    return time.perf_counter() - started


def rouge_rate(pairs: int) -> float:
    from prompt_lsp.evaluation.metrics import MetricSpec, rouge_fmeasures, score_all

    rouge_fmeasures.cache_clear()
    reference = (
        "Wexmoor Bay will replace its old diesel harbor ferry with two electric boats next "
        "spring, charged at a partly solar-powered dock."
    )
    specs = [MetricSpec("rougeL")]
    started = time.perf_counter()
    for i in range(pairs):
        output = f"The town of Wexmoor Bay will launch electric ferry {i} across its harbor."
        score_all(specs, output, reference)
    return pairs / (time.perf_counter() - started)


def local_tokens_per_second() -> str:
    """The embedded model's prompt-reading and generation rates, measured apart: a prompt read
    alone (one token generated), then a generation from a prompt already read."""
    try:
        from prompt_lsp.evaluation.local_model import engine_for, resolve_gguf

        engine = engine_for(resolve_gguf("gemma-3-270m"))
    except Exception as err:  # not installed: report, do not fail the benchmark
        return f"unavailable ({err})"
    engine.generate("Hello", {"max_tokens": 1})  # warm-up
    article = " ".join(
        f"Item {i} of the council's plan was approved on Tuesday." for i in range(20)
    )
    read = engine.generate(f"Summarize: {article}\nSummary:", {"max_tokens": 1, "temperature": 0})
    prompt = "Count from one to one hundred: one, two, three, four,"
    engine.generate(prompt, {"max_tokens": 1, "temperature": 0})  # read once: only generation below
    generation = engine.generate(prompt, {"max_tokens": 64, "temperature": 0})
    # the same prompt's continuation for every sequence at once: what decoding together gains
    params = {"max_tokens": 64, "temperature": 0}
    started = time.perf_counter()
    together = [
        f.result() for f in [engine.submit(prompt, params) for _ in range(engine.sequences)]
    ]
    seconds = time.perf_counter() - started
    tokens = sum(g.completion_tokens for g in together)
    return (
        f"{engine.threads} thread(s): prompt {read.prompt_tokens / read.seconds:.0f} tokens/s "
        f"({read.prompt_tokens} tokens in {read.seconds:.2f} s), generation "
        f"{generation.completion_tokens / generation.seconds:.1f} tokens/s "
        f"({generation.completion_tokens} tokens in {generation.seconds:.2f} s), "
        f"{engine.sequences} generations decoded together {tokens / seconds:.1f} tokens/s "
        f"({tokens} tokens in {seconds:.2f} s)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    register_provider("fixed", fixed_latency_provider(args.latency))
    ideal = args.examples * args.latency / args.concurrency
    with tempfile.TemporaryDirectory(prefix="prompt-lsp-warm-") as folder:
        # One-time costs of a process (litellm's lazy imports, nltk for ROUGE, the first
        # SQLite files): paid once per CLI run or language server, not per example.
        started = time.perf_counter()
        await run_eval(write_workspace(Path(folder), 32, args.concurrency))
        print(f"warm-up run (32 examples, one-time imports): {time.perf_counter() - started:.2f} s")
    with tempfile.TemporaryDirectory(prefix="prompt-lsp-bench-") as folder:
        path = write_workspace(Path(folder), args.examples, args.concurrency)
        wall, cpu, report = await run_eval(path)
        assert report.n_ok == args.examples and report.calls == args.examples, report.status
        print(
            f"uncached run: {args.examples} calls × {args.latency * 1000:.0f} ms at concurrency "
            f"{args.concurrency}: {wall:.2f} s, ideal {ideal:.2f} s, ratio {wall / ideal:.3f} "
            f"(target ≤ 1.15); process CPU {cpu / args.examples * 1000:.2f} ms per call"
        )
        raw = await raw_litellm(args.examples, args.concurrency)
        print(
            f"  same calls through bare litellm.acompletion + semaphore: {raw:.2f} s, "
            f"ratio {raw / ideal:.3f} (litellm's own floor on this machine)"
        )
        cached_wall, _, cached = await run_eval(path)
        assert cached.calls == 0 and all(r.cached for r in cached.results)
        print(
            f"fully cached re-run of {args.examples}: {cached_wall:.2f} s (target < 2 s); "
            f"headline {cached.headline.key} "
            f"{cached.aggregates[cached.headline.key]:.3f}"
        )
    print(f"ROUGE-L scoring rate: {rouge_rate(1000):,.0f} pairs/s (fresh pairs, stemming on)")
    print(f"embedded model (gemma-3-270m), {local_tokens_per_second()}")


if __name__ == "__main__":
    asyncio.run(main())
