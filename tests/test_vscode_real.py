"""A real VS Code: code-server 4.139.1 (Code 1.139.1) in headless Debian chromium, driven through
Playwright, with the packaged extension installed, inside a network namespace that has only
loopback. What a new user does: open a prompt, see it is a Prompt, break a line, complete a
variable, click Evaluate, read the score, look at the examples file; then close the editor.

The tools (Node 24, code-server, Playwright in its own venv; about 8 minutes once) are installed
by editors/vscode/tests/real/install-tools.sh, which .ci/run calls; the .vsix is built by
editors/vscode/build.sh. Without them this test is skipped, saying which is missing.
Screenshots and logs of a failed run are kept in tmp/artifacts/vscode-real/."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"
DRIVER = VSCODE / "tests" / "real" / "drive.py"
TOOLS = Path(
    os.environ.get(
        "PROMPT_LSP_VSCODE_TOOLS", Path.home() / ".cache" / "prompt-lsp-ci" / "vscode-tools"
    )
)
PLAYWRIGHT_PYTHON = TOOLS / "playwright-venv" / "bin" / "python"
ARTIFACTS = ROOT / "tmp" / "artifacts" / "vscode-real"
SAMPLE = ROOT / "samples" / "classify-sentiment"
EXAMPLES_KEPT = 3  # the embedded model takes a few seconds per example on 2 cores


def _missing() -> str | None:
    version = json.loads((VSCODE / "package.json").read_text())["version"]
    needs = {
        "code-server (run editors/vscode/tests/real/install-tools.sh)": TOOLS
        / "cs"
        / "bin"
        / "code-server",
        "Playwright's venv (run editors/vscode/tests/real/install-tools.sh)": PLAYWRIGHT_PYTHON,
        "chromium (apt install chromium)": Path("/usr/bin/chromium"),
        "the extension package (run editors/vscode/build.sh)": VSCODE
        / f"prompt-lsp-{version}.vsix",
    }
    for what, path in needs.items():
        if not path.exists():
            return f"{what}: {path} is missing"
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return "needs root and unshare for the loopback-only network namespace"
    return None


pytestmark = [
    pytest.mark.vscode,
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
]


def _workspace(tmp_path: Path) -> Path:
    """The classify-sentiment sample with its first examples, and a `.venv` holding the server
    (a venv of this Python that imports this checkout), as a user's project would have it."""
    workspace = tmp_path / "project"
    workspace.mkdir()
    shutil.copy(SAMPLE / "classify-sentiment.prompt", workspace)
    rows = list(csv.reader(io.StringIO((SAMPLE / "reviews.examples.csv").read_text())))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows[: 1 + EXAMPLES_KEPT])
    (workspace / "reviews.examples.csv").write_text(out.getvalue())
    venv = workspace / ".venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "prompt_lsp_checkout.pth").write_text(
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
    )
    return workspace


def test_a_user_session_in_real_vscode(tmp_path: Path):
    workspace = _workspace(tmp_path)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    out = tmp_path / "seen.json"
    version = json.loads((VSCODE / "package.json").read_text())["version"]
    driver = [
        str(PLAYWRIGHT_PYTHON),
        str(DRIVER),
        "--tools", str(TOOLS),
        "--vsix", str(VSCODE / f"prompt-lsp-{version}.vsix"),
        "--workspace", str(workspace),
        "--prompt", "classify-sentiment.prompt",
        "--examples", "reviews.examples.csv",
        "--artifacts", str(ARTIFACTS),
        "--out", str(out),
    ]  # fmt: skip
    # A fresh network namespace: only loopback exists, so nothing can reach another address.
    command = ["unshare", "--net", "--", "bash", "-c", 'ip link set lo up && exec "$@"', "bash"]
    result = subprocess.run(
        [*command, *driver], capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    assert out.exists(), f"the driver wrote nothing:\n{result.stdout}\n{result.stderr}"
    seen = json.loads(out.read_text())
    shutil.copy(out, ARTIFACTS / "seen.json")
    failure = f"failed at {seen.get('failed_step')}: {seen.get('error')}\nartifacts: {ARTIFACTS}"
    assert result.returncode == 0 and "error" not in seen, failure

    # only loopback, in the namespace and in every request the workbench made
    assert seen["interfaces"] == ["lo"], seen["interfaces"]
    assert set(seen["request_hosts"]) == {"127.0.0.1"}, seen["request_hosts"]

    assert seen["language_mode"] == "Prompt"
    # found in the workspace's .venv although code-server rebuilt the environment from the
    # login shell (nothing pointed the extension there)
    ((_, server_command, parent),) = seen["server_processes"]
    assert str(workspace / ".venv" / "bin") in server_command, server_command
    assert "extensionHost" in parent, parent
    assert any("Evaluate" in t for t in seen["first_lenses"]), seen["first_lenses"]

    assert seen["diagnostic"]["squiggles"] >= 1
    assert "upperr" in seen["diagnostic"]["problem"], seen["diagnostic"]

    completion = seen["completion"]
    # `{{` and `{%` typed at the end of a line are closed alike
    assert completion["after_typing_braces"].endswith("Again: {{}}"), completion
    assert completion["after_typing_statement"] == "{%%}", completion
    assert "review" in completion["labels"], completion
    assert completion["accepted_line"].endswith("Again: {{ review }}"), completion

    evaluated = seen["evaluate"]
    assert evaluated["progress_lens"].startswith("Evaluating "), evaluated
    assert f"/{EXAMPLES_KEPT} ok" in evaluated["score_lens"], evaluated
    assert "exact_match" in evaluated["status_bar"], evaluated
    example_lenses = [t for t in seen["example_lenses"] if "exact_match" in t or "✗" in t]
    assert len(example_lenses) == EXAMPLES_KEPT, seen["example_lenses"]

    # the server went away with the editor
    assert seen["servers_before_stop"], seen
    assert seen["servers_after_stop"] == [], seen["servers_after_stop"]
