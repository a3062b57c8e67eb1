"""The shipped samples: clean under `prompt-lsp check`, enough examples, and one really
evaluated on the embedded local model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prompt_lsp.evaluation.examples import load_examples
from prompt_lsp.evaluation.session import EvalOptions, evaluate_prompt
from prompt_lsp.format import parse

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
MINIMUM_EXAMPLES = {
    "summarize-news": 12,
    "python-codegen": 10,
    "classify-sentiment": 20,
    "route-ticket": 40,
}


def test_samples_check_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "prompt_lsp", "check", str(SAMPLES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "4 file(s) checked: 0 error(s), 0 warning(s)" in result.stderr


@pytest.mark.parametrize("name", sorted(MINIMUM_EXAMPLES))
def test_samples_have_their_examples(name: str) -> None:
    path = SAMPLES / name / f"{name}.prompt"
    doc = parse(path.read_text())
    examples = load_examples(doc, path)
    assert examples is not None and not examples.problems
    assert len(examples.examples) >= MINIMUM_EXAMPLES[name]
    assert all(e.has_expected for e in examples.examples)
    assert doc.model_id == "local/gemma-3-270m"


@pytest.mark.local_model
async def test_sentiment_sample_on_the_local_model(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="the `local` extra is not installed")
    folder = tmp_path / "classify-sentiment"
    shutil.copytree(SAMPLES / "classify-sentiment", folder)
    path = folder / "classify-sentiment.prompt"
    options = EvalOptions(
        example_ids=["r01", "r02", "r03"], use_cache=False, workspace_root=tmp_path
    )
    report = await evaluate_prompt(path, path.read_text(), options)
    assert report.n_ok == 3, [r.error for r in report.results]
    for result in report.results:
        # max_tokens 3 and a stop at the newline: one short label-like answer
        assert result.output is not None and "\n" not in result.output.strip()
        assert 0 < result.completion_tokens <= 3
        assert result.scores["exact_match"] in (0.0, 1.0)
