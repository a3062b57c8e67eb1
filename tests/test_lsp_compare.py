"""Comparisons in the editor, over stdio: the lens marks a significant delta (▲/▼) apart from
noise (≈), the hover gives the interval, p-value and n, and a committed baseline gets its own
hover row and lens segment.

litellm answers through `mock_response`, the same word for every example: with eight examples
that all expect "positive", answering "negative" drops every example from 1 to 0 (a certain,
significant drop: p = 2/2⁸ by the exact sign-flip test), while the four-example file of
test_lsp_evaluate.py shows a drop that four examples cannot tell from noise."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from lsp_helpers import EditorClient, editor_client
from lsprotocol import types
from test_lsp_evaluate import evaluate

pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

client = editor_client(("neovim@v0.10.0",))

EXAMPLES = "\n".join(
    json.dumps({"id": f"r{i}", "input": {"review": f"review {i}"}, "expected": "positive"})
    for i in range(8)
)


def prompt(reply: str, instruction: str = "Classify the review.") -> str:
    return f"""\
---
name: sentiment
model: openai/gpt-4o-mini
config:
  mock_response: {reply}
input:
  schema:
    review: string, the review to classify
examples: reviews.examples.jsonl
metrics:
  - exact_match
---
user:
{instruction}
{{{{ review }}}}
"""


async def hover_text(client: EditorClient, uri: str) -> str:
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(0, 1))
    )
    return hover.contents.value


async def test_significant_drop_and_the_baseline_row(client: EditorClient) -> None:
    client.write("reviews.examples.jsonl", EXAMPLES)
    path = client.write("sentiment.prompt", prompt("positive"))
    # the committed baseline, saved by the CLI as a teammate would
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "prompt_lsp", "eval", str(path), "--save-baseline"],
        cwd=client.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (client.root / "sentiment.baseline.json").is_file()

    uri = await client.open("sentiment.prompt", prompt("negative"))
    title = await evaluate(client, uri)
    # every example fell from 1 to 0: the interval is [−1, −1], significant
    assert title.startswith("exact_match 0.000 ▼1.000 · 8/8 ok")
    assert "baseline" not in title  # the baseline is the previous version: no second segment
    text = await hover_text(client, uri)
    assert (
        "| exact_match | 1.000 | 0.000 | ▼1.000 | −1.000 [−1.000, −1.000] | p = 0.008 | 8 |" in text
    )
    assert "significantly worse" in text and "sign-flip permutation (exact)" in text
    assert "**vs baseline**" in text

    # another wording with the same answers: no change from the previous version, but still
    # far below the baseline, which now gets its own lens segment and hover row
    await client.change(uri, prompt("negative", instruction="Classify this review."))
    title = await evaluate(client, uri)
    assert title.startswith("exact_match 0.000 = · baseline ▼1.000 · 8/8 ok")
    text = await hover_text(client, uri)
    assert "| exact_match | 0.000 | 0.000 | = |" in text
    baseline_part = text[text.index("**vs baseline**") :]
    assert "| exact_match | 1.000 | 0.000 | ▼1.000 | −1.000 [−1.000, −1.000] | p = 0.008 | 8 |" in (
        baseline_part
    )

    # back to a version that agrees with the baseline on every example: within noise of it
    await client.change(uri, prompt("positive", instruction="Classify the review, please."))
    title = await evaluate(client, uri)
    assert title.startswith("exact_match 1.000 ▲1.000 · baseline = · 8/8 ok")


async def test_a_noisy_delta_shows_its_interval_and_the_examples_needed(
    client: EditorClient,
) -> None:
    half = "\n".join(
        json.dumps(
            {
                "id": f"r{i}",
                "input": {"review": f"review {i}"},
                "expected": "positive" if i < 4 else "negative",
            }
        )
        for i in range(6)
    )
    client.write("reviews.examples.jsonl", half)
    uri = await client.open("sentiment.prompt", prompt("positive"))
    await evaluate(client, uri)
    await client.change(uri, prompt("negative"))
    title = await evaluate(client, uri)
    # four examples down by 1, two up by 1: −0.333, which six examples cannot tell from noise
    assert title.startswith("exact_match 0.333 ≈−0.333 · 6/6 ok")
    text = await hover_text(client, uri)
    # 44 of the 64 sign flips of (−1, −1, −1, −1, +1, +1) have |sum| ≥ 2
    assert "within noise" in text and "p = 0.688" in text and "| 6 |" in text
    # sd of the differences √(48/45) = 1.033; ((1.960 + 0.842) · 1.033 / 0.333)² = 75.4
    assert "a change this size needs ≈76 examples to show (80% power)" in text
    examples_uri = client.path("reviews.examples.jsonl").as_uri()
    assert len(client.diagnostics.get(examples_uri, [])) == 4  # no repeats: every regression
