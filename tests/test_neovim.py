"""A real editor: headless Neovim loads editors/neovim the way a user does and talks to the server."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_editor

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "editors" / "neovim"
SCRIPTS = Path(__file__).resolve().parent / "nvim"

pytestmark = [
    pytest.mark.neovim,
    pytest.mark.skipif(
        shutil.which("nvim") is None, reason="nvim is not installed (.ci/run installs it)"
    ),
]

HAIKU = """\
---
name: haiku
input:
  schema:
    topic: string, what the haiku is about
examples:
  - {input: {topic: autumn rain}, expected: "rain on the roof"}
---
user:
Write a haiku about {{ topic }} in a {{ mood }} tone.
<start_of_turn>
"""


def run_nvim(
    script: str, prompt: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    command = ["nvim", "--headless", "--clean", "-u", "NONE", "-S", str(SCRIPTS / script)]
    plugin = {"PROMPT_LSP_NVIM_PLUGIN": str(PLUGIN), "PROMPT_LSP_NVIM_TESTS": str(SCRIPTS)}
    return run_editor(command, prompt, timeout, {**plugin, **env})


def test_editing_features_in_neovim(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    prompt = tmp_path / "haiku.prompt"
    prompt.write_text(HAIKU)
    result = run_nvim("editing.lua", prompt)
    assert result.returncode == 0, result.stderr
    for step in ("diagnostics ok", "completion ok", "hover ok", "quick fix ok"):
        assert step in result.stderr


CAPITALS = """\
---
name: capitals
model: local/gemma-3-270m
config: {temperature: 0, max_tokens: 6, stop: ["\\n"]}
input:
  schema:
    country: string, a country
examples:
  - {input: {country: France}, expected: Paris}
  - {input: {country: Japan}, expected: Tokyo}
metrics: [rougeL]
---
Q: What is the capital of Spain?
A: Madrid
Q: What is the capital of {{ country }}?
A:"""


@pytest.mark.local_model
def test_evaluate_through_the_code_lens_on_the_local_model(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="the `local` extra is not installed")
    (tmp_path / ".git").mkdir()
    prompt = tmp_path / "capitals.prompt"
    prompt.write_text(CAPITALS)
    result = run_nvim("evaluate.lua", prompt, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "score: rougeL " in result.stderr
    assert (tmp_path / ".prompt-lsp" / "history.sqlite3").exists()


def test_plugin_commands_reach_the_server(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    prompt = tmp_path / "haiku.prompt"
    prompt.write_text(HAIKU.replace(" in a {{ mood }} tone", ""))
    rendered = tmp_path / ".prompt-lsp" / "out" / "haiku.rendered.md"
    result = run_nvim("commands.lua", prompt, RENDERED_FILE=str(rendered))
    assert result.returncode == 0, result.stderr
    assert "Write a haiku about autumn rain." in rendered.read_text()
    for step in ("render ok", "compare ok", "cancel ok"):
        assert step in result.stderr


def test_plugin_completion_and_examples_watch_without_manual_calls(tmp_path: Path) -> None:
    """The issue's Neovim 0.7 failures: `E764: Option 'omnifunc' is not set`, and an examples
    file changed on disk not picked up until the prompt is saved."""
    (tmp_path / ".git").mkdir()
    prompt = tmp_path / "haiku.prompt"
    prompt.write_text(
        HAIKU.replace(" in a {{ mood }} tone", "")
        .replace("<start_of_turn>\n", "")
        .replace('  - {input: {topic: autumn rain}, expected: "rain on the roof"}', "cases.jsonl")
        .replace("examples:\n", "examples: ")
    )
    examples = tmp_path / "cases.jsonl"
    examples.write_text('{"input": {"subject": "autumn rain"}, "expected": "rain"}\n')
    result = run_nvim("plugin.lua", prompt, EXAMPLES_FILE=str(examples))
    assert result.returncode == 0, result.stderr
    for step in ("omnifunc ok", "examples watch ok", "checkhealth ok"):
        assert step in result.stderr, result.stderr


@pytest.mark.local_model
def test_lens_updates_after_prompt_evaluate_with_no_manual_refresh(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="the `local` extra is not installed")
    (tmp_path / ".git").mkdir()
    prompt = tmp_path / "capitals.prompt"
    prompt.write_text(CAPITALS)
    result = run_nvim("evaluate_command.lua", prompt, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "score lens: rougeL " in result.stderr, result.stderr
    shown = [line for line in result.stderr.splitlines() if line.startswith("shown: ")]
    assert any("Evaluating capitals" in line for line in shown), shown  # progress
    assert any("rougeL" in line for line in shown), shown  # the score
    assert "statusline: rougeL " in result.stderr, result.stderr
