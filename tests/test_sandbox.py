"""`code_tests` runs model code in a real bubblewrap sandbox: every escape of issue 10 fails.

Each attack is written as test code that exits 0 only if the attack worked, so a score of 1
would mean an escape; the reason must show the attack itself was stopped (not that the code
never ran), and the host is checked for the attack's effect. A legitimate solution still
passes. These run against the real sandbox (CI installs bubblewrap); they skip, saying why,
only where no sandbox can be created.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from prompt_lsp.evaluation import sandbox
from prompt_lsp.evaluation.cache import CachedReply, ResponseCache
from prompt_lsp.evaluation.metrics import MetricScore, run_code_tests
from prompt_lsp.evaluation.sandbox import UNSANDBOXED_VARIABLE

PROJECT_ROOT = Path(__file__).resolve().parents[1]
problem = sandbox.sandbox_problem()
needs_sandbox = pytest.mark.skipif(
    problem is not None, reason=f"no sandbox on this machine: {problem}"
)


@pytest.fixture(autouse=True)
def _sandbox_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never fall back to unsandboxed runs here, and never reuse a cached score."""
    monkeypatch.delenv(UNSANDBOXED_VARIABLE, raising=False)
    from prompt_lsp.evaluation import metrics

    metrics._run_code_tests.cache_clear()


def attack(code: str, timeout_s: float = 10.0) -> MetricScore:
    return run_code_tests(code, "pass", timeout_s)


# ---------------------------------------------------------------------------- reading


@needs_sandbox
@pytest.mark.parametrize(
    "path",
    [
        "/etc/shadow",
        "/etc/passwd",
        str(PROJECT_ROOT / "pyproject.toml"),
        str(Path.home() / ".ssh"),
    ],
)
def test_model_code_cannot_read_outside_its_work_dir(path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist on this machine")
    code = (
        "import os\n"
        f"p = {path!r}\n"
        "data = os.listdir(p) if os.path.isdir(p) else open(p, 'rb').read()\n"
        "assert data is not None\n"
    )
    result = attack(code)
    assert result.score == 0.0
    assert "FileNotFoundError" in (result.reason or ""), result.reason


@needs_sandbox
def test_the_home_folder_shows_nothing_but_the_way_to_the_interpreter() -> None:
    home = Path.home()
    result = attack(f"import os\nraise SystemExit(repr(sorted(os.listdir({str(home)!r}))))")
    interpreter = Path(os.path.realpath(sys.executable))
    if home not in interpreter.parents:  # the home folder is not mounted at all
        assert "FileNotFoundError" in (result.reason or ""), result.reason
        return
    leading = interpreter.relative_to(home).parts[0]
    assert result.reason == repr([leading])
    assert sorted(os.listdir(home)) != [leading]  # the host's home holds more


@needs_sandbox
def test_model_code_cannot_read_a_secret_file_the_test_made(tmp_path: Path) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY", encoding="utf-8")
    result = attack(f"assert 'PRIVATE' in open({str(secret)!r}).read()")
    assert result.score == 0.0 and "FileNotFoundError" in (result.reason or "")


# ---------------------------------------------------------------------------- writing


@needs_sandbox
def test_model_code_cannot_write_400_mib_anywhere(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    chunk = "b'x' * (4 * 1024 * 1024 - 1)"
    code = (
        "import os\n"
        "written = 0\n"
        f"for folder in ({str(tmp_path)!r}, '/', '/usr', '/tmp', '.'):\n"
        "    for n in range(100):\n"
        "        try:\n"
        f"            with open(os.path.join(folder, f'big{{n}}.bin'), 'wb') as f:\n"
        f"                f.write({chunk})\n"
        "            written += 4\n"
        "        except OSError:\n"
        "            break\n"
        "assert written >= 400, written\n"
    )
    result = attack(code)
    assert result.score == 0.0
    assert "AssertionError" in (result.reason or ""), result.reason  # every path stopped it
    assert not target.exists() and list(tmp_path.iterdir()) == []


@needs_sandbox
def test_one_file_is_limited_in_size() -> None:
    result = attack("open('out.bin', 'wb').write(b'x' * 50_000_000)")
    assert result.score == 0.0
    assert "File too large" in (result.reason or "") or "size limit" in (result.reason or "")


@needs_sandbox
def test_model_code_cannot_rewrite_the_response_cache(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite3")
    cache.put("k", "m", CachedReply("honest", 1, 1, 0.0, 0.1))
    cache.close()
    before = (tmp_path / "cache.sqlite3").read_bytes()
    code = (
        "import sqlite3\n"
        f"c = sqlite3.connect({str(tmp_path / 'cache.sqlite3')!r})\n"
        "c.execute(\"UPDATE responses SET output = 'attacker'\")\n"
        "c.commit()\n"
        "assert c.execute('SELECT output FROM responses').fetchone()[0] == 'attacker'\n"
    )
    result = attack(code)
    assert result.score == 0.0
    assert (tmp_path / "cache.sqlite3").read_bytes() == before
    reopened = ResponseCache(tmp_path / "cache.sqlite3")
    hit = reopened.get("k")
    reopened.close()
    assert hit is not None and hit.output == "honest"


# ---------------------------------------------------------------------------- network


@needs_sandbox
def test_model_code_cannot_reach_a_loopback_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        code = (
            "import socket\n"
            f"s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "s.sendall(b'stolen')\n"
        )
        result = attack(code)
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()  # nobody connected
    assert result.score == 0.0
    assert "OSError" in (result.reason or "") or "Error" in (result.reason or ""), result.reason


# ---------------------------------------------------------------------------- processes


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@needs_sandbox
@pytest.mark.parametrize("parent", ["hangs until the kill", "exits at once"])
def test_no_grandchild_outlives_the_run(parent: str) -> None:
    marker = f"prompt-lsp-escapee-{os.getpid()}-{time.monotonic_ns()}"
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}])\n"
        "    os._exit(0)\n"
        "time.sleep(0.5)\n"
        + ("while True:\n    pass\n" if parent == "hangs until the kill" else "")
    )
    result = run_code_tests(code, "pass", 2.0)
    if parent == "exits at once":
        assert result.score == 1.0, result.reason  # the code itself ran fine
    else:
        assert result.reason == "timed out after 2 s"
    time.sleep(0.3)
    assert _processes_with(marker) == []


@needs_sandbox
def test_model_code_cannot_read_the_parent_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"sk-test-{time.monotonic_ns()}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    code = (
        "import os\n"
        "seen = [os.environ.get('OPENAI_API_KEY', '')]\n"
        f"for pid in [os.getppid(), {os.getpid()}] + [p for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    try:\n"
        "        seen.append(open(f'/proc/{pid}/environ', 'rb').read().decode('latin-1'))\n"
        "    except OSError:\n"
        "        pass\n"
        f"assert any({secret!r} in text for text in seen), 'no key found'\n"
    )
    result = attack(code)
    assert result.score == 0.0
    assert "no key found" in (result.reason or ""), result.reason


@needs_sandbox
def test_model_code_cannot_signal_the_parent() -> None:
    code = f"import os, signal\nos.kill({os.getpid()}, 0)\nos.kill({os.getpid()}, signal.SIGKILL)\n"
    result = attack(code)
    assert result.score == 0.0
    assert "ProcessLookupError" in (result.reason or ""), result.reason


# ---------------------------------------------------------------------------- legitimate code


@needs_sandbox
def test_a_legitimate_solution_still_passes() -> None:
    reply = (
        "```python\n"
        "import collections, json, math\n"
        "def word_counts(text):\n"
        "    with open('scratch.txt', 'w') as f:\n"  # its own work dir is writable
        "        f.write(text)\n"
        "    with open('scratch.txt') as f:\n"
        "        return dict(collections.Counter(f.read().split()))\n"
        "```"
    )
    tests = (
        "assert word_counts('a b a') == {'a': 2, 'b': 1}\n"
        "assert math.isclose(json.loads('0.5'), 0.5)\n"
    )
    assert run_code_tests(reply, tests, 10.0) == MetricScore(1.0)


# ---------------------------------------------------------------------------- no sandbox


def test_without_a_sandbox_code_tests_refuses_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sandbox, "sandbox_problem", lambda: "bubblewrap (bwrap) is not installed")
    result = run_code_tests("def one():\n    return 1", "assert one() == 1", 10.0)
    assert result.score is None
    reason = result.reason or ""
    assert "\n" not in reason
    assert "bubblewrap (bwrap) is not installed" in reason
    assert f"{UNSANDBOXED_VARIABLE}=1" in reason and "--allow-unsandboxed-code" in reason


def test_the_user_can_opt_in_to_running_code_without_a_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sandbox, "sandbox_problem", lambda: "bubblewrap (bwrap) is not installed")
    monkeypatch.setenv(UNSANDBOXED_VARIABLE, "1")
    assert run_code_tests("def one():\n    return 1", "assert one() == 1", 10.0).score == 1.0
    monkeypatch.setenv("OPENAI_API_KEY", "sk-still-not-passed")
    tests = "import os\nassert 'OPENAI_API_KEY' not in os.environ"
    assert run_code_tests("x = 1", tests, 10.0).score == 1.0


async def test_an_evaluation_with_code_tests_refuses_before_any_call_without_a_sandbox(
    monkeypatch: pytest.MonkeyPatch, scripted: Any, write_prompt: Any
) -> None:
    from prompt_lsp.evaluation.session import EvalOptions, EvalSetupError, evaluate_prompt

    monkeypatch.setattr(sandbox, "sandbox_problem", lambda: "bubblewrap (bwrap) is not installed")
    path = write_prompt(
        "---\nmodel: scripted/test-model\nexamples:\n"
        "  - {id: a, input: {q: x}, expected: 'assert True'}\nmetrics: [code_tests]\n---\n"
        "{{ q }}\n"
    )
    with pytest.raises(EvalSetupError) as raised:
        await evaluate_prompt(path, path.read_text(), EvalOptions())
    assert "bubblewrap (bwrap) is not installed" in str(raised.value)
    assert "--allow-unsandboxed-code" in str(raised.value) and "\n" not in str(raised.value)
    assert scripted.call_count == 0
