"""Paired comparisons of real runs (runner, history, comparison) with a noisy scripted model.

The model answers each example right with the probability its prompt version names
(`quality 60` → 60%), drawn afresh for every version and trial: two versions of the same
quality differ only by chance, two of very different quality really differ."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from prompt_lsp.evaluation.providers import ModelReply
from prompt_lsp.evaluation.session import EvalOptions, evaluate_prompt

EXAMPLES = 30
TRIALS = 20


def prompt_text(quality: int, trial: int, wording: str) -> str:
    return f"""---
model: direct/noisy
examples: cases.jsonl
metrics: [exact_match]
---
user:
{wording} (quality {quality}, trial {trial})
{{{{ word }}}}
"""


async def noisy_model(
    model: str, messages: list[dict[str, str]], config: dict[str, object], timeout_s: float
) -> ModelReply:
    content = messages[-1]["content"]
    quality = int(content.split("quality ")[1].split(",")[0])
    word = content.strip().split()[-1]
    draw = random.Random(hashlib.sha256(content.encode()).digest()).random()
    return ModelReply(word.upper() if draw < quality / 100 else "wrong", 5, 1, 0.0)


async def compare(folder: Path, before: str, after: str) -> bool:
    """Evaluate two versions; whether the second's headline change is called significant."""
    path = folder / "p.prompt"
    options = EvalOptions(transport=noisy_model, use_cache=False, workspace_root=folder)
    for text in (before, after):
        path.write_text(text)
        report = await evaluate_prompt(path, text, options)
    assert report.comparison is not None
    stat = report.comparison.stats["exact_match"]
    assert stat.n == EXAMPLES and stat.excluded == 0
    return stat.significant


async def test_a_large_difference_is_flagged_and_none_rarely_is(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    rows = [{"id": f"e{i}", "input": {"word": f"w{i}"}, "expected": f"W{i}"} for i in range(30)]
    (tmp_path / "cases.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    flagged_large = flagged_none = 0
    for trial in range(TRIALS):
        flagged_large += await compare(
            tmp_path,
            prompt_text(90, trial, "Upper-case the word."),
            prompt_text(30, trial, "Upper-case the word!"),
        )
        flagged_none += await compare(
            tmp_path,
            prompt_text(60, trial, "Write the word in capitals."),
            prompt_text(60, trial, "Write the word in capital letters."),
        )
    assert flagged_large == TRIALS  # a drop of 0.6 on 30 examples: always seen
    # no true difference: at the nominal 5%, one in 20 trials on average; 4 or more would
    # happen by chance less than 2% of the time
    assert flagged_none <= 3
