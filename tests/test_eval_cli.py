"""`prompt-lsp eval | history | render` end to end (scripted provider, in-process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ScriptedProvider, Step

from prompt_lsp.cli import main
from prompt_lsp.evaluation.runner import RetryPolicy

PROMPT = """
---
model: scripted/test-model
examples: cases.jsonl
metrics:
  - rougeL
  - {name: exact_match, threshold: 0.5}
---
user:
Repeat {{ word }}
"""
CASES = """
{"id": "one", "input": {"word": "alpha"}, "expected": "echo: Repeat alpha"}
{"id": "two", "input": {"word": "beta"}, "expected": "echo: Repeat beta"}
{"id": "three", "input": {"word": "gamma"}, "expected": "something else entirely"}
"""


@pytest.fixture
def prompt(write_prompt: Callable[..., Path]) -> Path:
    return write_prompt(PROMPT, examples=CASES)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from prompt_lsp.evaluation import session

    monkeypatch.setattr(session, "DEFAULT_RETRY", RetryPolicy(max_attempts=3, base_delay_s=0.001))


def test_eval_prints_a_table_and_writes_json_and_junit(
    scripted: ScriptedProvider, prompt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path, junit_path = prompt.parent / "r.json", prompt.parent / "r.xml"
    code = main(["eval", str(prompt), "--json", str(report_path), "--junit", str(junit_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "one" in out and "rougeL" in out and "(headline)" in out
    assert "first evaluated version" in out

    report = json.loads(report_path.read_text())
    assert report["model"] == "scripted/test-model"
    assert len(report["version"]) == 64
    assert report["aggregates"]["exact_match"] == pytest.approx(2 / 3)
    assert report["deltas"] == {}
    first = report["examples"][0]
    assert first["id"] == "one" and first["inputs"] == {"word": "alpha"}
    assert first["output"] == "echo: Repeat alpha"
    assert first["expected"] == "echo: Repeat alpha"
    assert first["scores"] == {"rougeL": 1.0, "exact_match": 1.0}
    assert first["tokens"] == {"prompt": 7, "completion": 3}
    assert set(first) >= {"latency_s", "cost", "error", "cached"}

    suite = ET.parse(junit_path).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "3" and suite.get("failures") == "1"
    failing = [case.get("name") for case in suite if case.find("failure") is not None]
    assert failing == ["three"]


def test_second_run_is_cached_and_shows_the_delta_after_an_edit(
    scripted: ScriptedProvider, prompt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(prompt)]) == 0
    assert main(["eval", str(prompt)]) == 0
    assert scripted.call_count == 3
    assert "all cached" in capsys.readouterr().out

    prompt.write_text(prompt.read_text().replace("Repeat {{ word }}", "Say {{ word }}"))
    assert main(["eval", str(prompt), "--json", "-"]) == 1  # exact_match drops to 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout holds the JSON report alone
    assert report["deltas"]["exact_match"] == pytest.approx(-2 / 3)
    assert {change["id"] for change in report["regressed"]} == {"one", "two"}
    assert "FAIL" in captured.err and "FAIL" not in captured.out
    # the headline fell on three examples: too few to tell that from noise
    assert "rougeL vs previous version: within noise: Δ −" in captured.err
    assert "n = 3" in captured.err and "examples to show (80% power)" in captured.err


def test_threshold_failure_and_all_failed_exit_1(
    scripted: ScriptedProvider, prompt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scripted.script(lambda text, attempt: Step(text="wrong"))
    assert main(["eval", str(prompt)]) == 1
    scripted.script(lambda text, attempt: Step("raise"))
    prompt.write_text(prompt.read_text() + "\n")  # a new version, so nothing is cached
    assert main(["eval", str(prompt), "--no-cache", "--concurrency", "3"]) in (1,)


def test_usage_problems_exit_2_with_one_line(
    prompt: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["eval", str(prompt.parent / "missing.prompt")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"prompt-lsp: {prompt.parent / 'missing.prompt'}: no such file"
    )

    assert main(["eval", str(prompt), "--repeat", "0"]) == 2
    assert "--repeat must be at least 1" in capsys.readouterr().err

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["eval", str(prompt), "--model", "openai/gpt-4o-mini"]) == 2
    err = capsys.readouterr().err
    assert err == "prompt-lsp: OPENAI_API_KEY is not set: export it, or pick another `model:`\n"

    (prompt.parent / "cases.jsonl").write_text("")
    assert main(["eval", str(prompt)]) == 2
    assert "no usable examples" in capsys.readouterr().err


def test_ctrl_c_records_the_partial_run_and_exits_130(
    scripted: ScriptedProvider,
    write_prompt: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cases = "\n".join(
        json.dumps({"id": f"c{i}", "input": {"word": str(i)}, "expected": "x"}) for i in range(40)
    )
    path = write_prompt(PROMPT, examples=cases)
    scripted.script(lambda text, attempt: Step(text="x", delay=0.1))
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        code = main(
            ["eval", str(path), "--concurrency", "2", "--json", str(path.parent / "r.json")]
        )
    finally:
        timer.cancel()
    assert code == 130
    assert "cancelled after" in capsys.readouterr().err
    report = json.loads((path.parent / "r.json").read_text())
    assert report["status"] == "cancelled" and 0 < len(report["examples"]) < 40

    capsys.readouterr()
    assert main(["history", str(path)]) == 0
    assert "cancelled" in capsys.readouterr().out


def test_history_table_and_diff(
    scripted: ScriptedProvider, prompt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", str(prompt)]) == 0
    assert "no evaluations recorded" in capsys.readouterr().out

    main(["eval", str(prompt)])
    first_version = json.loads(_json_report(prompt))["version"]
    prompt.write_text(prompt.read_text().replace("Repeat {{ word }}", "Please repeat {{ word }}"))
    main(["eval", str(prompt)])
    capsys.readouterr()

    assert main(["history", str(prompt)]) == 0
    out = capsys.readouterr().out
    assert first_version[:8] in out and "scripted/test-model" in out and "rougeL" in out

    assert main(["history", str(prompt), "--diff"]) == 0
    out = capsys.readouterr().out
    assert "rougeL" in out and "regressed" in out and "improved" in out
    assert "(sign-flip permutation (exact)); n = 3" in out  # the deltas' statistics
    assert "-Repeat {{ word }}" in out and "+Please repeat {{ word }}" in out


def _json_report(prompt: Path) -> str:
    target = prompt.parent / "latest.json"
    main(["eval", str(prompt), "--json", str(target)])
    return target.read_text()


def test_render_shows_the_messages(
    write_prompt: Callable[..., Path], prompt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", str(prompt), "--example", "2"]) == 0
    out = capsys.readouterr().out
    assert "Repeat beta" in out and "user" in out and "id two" in out

    assert main(["render", str(prompt), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"role": "user", "content": "Repeat alpha"}]

    assert main(["render", str(prompt), "--example", "9"]) == 2
    assert "between 1 and 3" in capsys.readouterr().err

    bare = write_prompt(
        "---\ninput:\n  default:\n    who: world\n---\nsystem:\nBe kind.\nuser:\nHello {{ who }}\n",
        name="bare.prompt",
    )
    assert main(["render", str(bare), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hello world"},
    ]


def test_cli_subprocess_bad_local_model_is_one_line_without_traceback(
    write_prompt: Callable[..., Path],
) -> None:
    path = write_prompt(PROMPT.replace("scripted/test-model", "local/nowhere.gguf"), examples=CASES)
    result = subprocess.run(
        [sys.executable, "-m", "prompt_lsp", "eval", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "nowhere.gguf" in lines[0]


def test_an_example_that_cannot_render_fails_alone(
    scripted: ScriptedProvider, write_prompt: Callable[..., Path]
) -> None:
    cases = CASES.replace('{"word": "beta"}', '{"other": "beta"}')
    prompt = write_prompt(PROMPT, examples=cases)
    report_path = prompt.parent / "r.json"
    main(["eval", str(prompt), "--json", str(report_path)])
    report = json.loads(report_path.read_text())
    errors = {e["id"]: e["error"] for e in report["examples"]}
    assert errors["one"] is None and errors["three"] is None
    assert "'word' is undefined" in errors["two"]
    assert report["n_ok"] == 2 and report["n_failed"] == 1


def test_yaml_errors_stop_eval_and_render_with_their_line(
    write_prompt: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    prompt = write_prompt("---\nmodel: scripted/x\nconfig: [1, 2\n---\nhi\n", examples=CASES)
    for command in (["eval", str(prompt)], ["render", str(prompt)]):
        assert main(command) == 2
        assert "line 3: Invalid YAML" in capsys.readouterr().err


def test_a_killed_run_shows_as_interrupted_with_what_finished(tmp_path: Path) -> None:
    """`kill -9` in the middle of `prompt-lsp eval`: the run is in history as it went."""
    import sqlite3
    import time

    (tmp_path / ".git").mkdir()
    cases = "\n".join(
        json.dumps({"id": f"c{i}", "input": {"word": str(i)}, "expected": "ok"}) for i in range(8)
    )
    (tmp_path / "cases.jsonl").write_text(cases + "\n")
    path = tmp_path / "slow.prompt"
    path.write_text(
        "---\nmodel: openai/gpt-4o-mini\nconfig:\n  mock_response: ok\n  mock_delay: 0.6\n"
        "examples: cases.jsonl\nmetrics: [exact_match]\neval:\n  concurrency: 1\n---\n"
        "Repeat {{ word }}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-m", "prompt_lsp", "eval", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    database = tmp_path / ".prompt-lsp" / "history.sqlite3"

    def finished() -> int:
        if not database.exists():
            return 0
        with sqlite3.connect(database) as db:
            try:
                return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
            except sqlite3.OperationalError:  # the schema is being created
                return 0

    deadline = time.monotonic() + 60
    while finished() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    process.kill()
    process.wait()
    done = finished()
    assert 2 <= done < 8

    shown = subprocess.run(
        [sys.executable, "-m", "prompt_lsp", "history", str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"interrupted, {done} of 8" in shown
