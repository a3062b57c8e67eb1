"""A real Emacs 28 with eglot (Debian's emacs-nox and elpa-eglot), batch mode, with the README's
setup under `emacs -Q`: diagnostics, completion on C-M-i, a plaintext hover, and the run commands
as code actions; Evaluate through the code action on the embedded model."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_editor

ROOT = Path(__file__).resolve().parent.parent
SESSION = Path(__file__).resolve().parent / "emacs" / "session.el"


PROBE = """(progn (require 'package)
  (add-to-list 'package-directory-list "/usr/share/emacs/site-lisp/elpa")
  (package-initialize) (require 'eglot))"""


def _eglot_missing() -> bool:
    if shutil.which("emacs") is None:
        return True
    probe = subprocess.run(
        ["emacs", "-Q", "--batch", "--eval", PROBE], capture_output=True, timeout=60
    )
    return probe.returncode != 0


pytestmark = [
    pytest.mark.emacs,
    pytest.mark.skipif(
        _eglot_missing(), reason="emacs with eglot is not installed (.ci/run: emacs-nox elpa-eglot)"
    ),
]

PROMPT = """\
---
name: haiku
input:
  schema:
    topic: string, what the haiku is about
examples:
  - {input: {topic: autumn rain}, expected: "rain on the roof"}
metrics: [rougeL]
model: local/gemma-3-270m
config: {temperature: 0, max_tokens: 8}
---
user:
Write a haiku about {{ topic }} in a {{ mood }} tone.
"""


def run_emacs(prompt: Path, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    command = ["emacs", "-Q", "--batch", "-l", str(SESSION)]
    return run_editor(
        command, prompt, timeout, {"PROMPT_LSP_EMACS_DIR": str(ROOT / "editors" / "emacs"), **env}
    )


def test_editing_in_emacs_with_eglot(tmp_path: Path) -> None:
    prompt = tmp_path / "haiku.prompt"
    prompt.write_text(PROMPT)
    result = run_emacs(prompt)
    assert result.returncode == 0, result.stderr[-4000:]
    for step in ("diagnostics ok", "completion ok", "hover ok", "code actions ok"):
        assert step in result.stderr, result.stderr[-4000:]


@pytest.mark.local_model
def test_evaluate_through_a_code_action_in_emacs(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="the `local` extra is not installed")
    prompt = tmp_path / "haiku.prompt"
    prompt.write_text(PROMPT.replace(" in a {{ mood }} tone", ""))
    result = run_emacs(prompt, timeout=400, PROMPT_LSP_EVALUATE="1")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "evaluate ok" in result.stderr, result.stderr[-4000:]
    assert (tmp_path / ".prompt-lsp" / "history.sqlite3").exists()
