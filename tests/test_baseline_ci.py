"""Baselines in git, `--check-baseline`, `--against REF`, Markdown summaries and folder runs,
end to end through `prompt-lsp eval` in a real temporary git repository (scripted provider).

The scripted model answers an example right when a hash of (example word, the prompt's
"quality" marker) falls under the marker's percentage, so each prompt version has a known,
reproducible quality: `quality 90` answers about 90% of the examples right, `quality 30` about
30%, and an edit that keeps the marker keeps every answer."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import ScriptedProvider, Step

from prompt_lsp.cli import main

WORDS = [f"w{i:02d}" for i in range(24)]
EXAMPLES = "\n".join(
    json.dumps({"id": word, "input": {"word": word}, "expected": word.upper()}) for word in WORDS
)


def prompt_text(quality: int, extra: str = "") -> str:
    return f"""---
model: scripted/test-model
examples: cases.jsonl
metrics:
  - {{name: exact_match, threshold: 0.2}}
---
user:
Upper-case the word (quality {quality}).{extra}
{{{{ word }}}}
"""


def right(word: str, quality: int) -> bool:
    digest = hashlib.sha256(f"{word}/{quality}".encode()).digest()
    return digest[0] * 100 < quality * 256


def expected_score(quality: int) -> float:
    return sum(right(word, quality) for word in WORDS) / len(WORDS)


@pytest.fixture
def model(scripted: ScriptedProvider) -> ScriptedProvider:
    def behaviour(prompt: str, attempt: int) -> Step:
        quality = int(re.search(r"quality (\d+)", prompt).group(1))
        word = prompt.strip().split()[-1]
        return Step(text=word.upper() if right(word, quality) else "no idea")

    scripted.script(behaviour)
    return scripted


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.invalid",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.invalid",
            "HOME": str(repo),
            "PATH": "/usr/bin:/bin:/usr/local/bin",
        },
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "origin"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text(".prompt-lsp/\n")
    (root / "cases.jsonl").write_text(EXAMPLES + "\n")
    (root / "upper.prompt").write_text(prompt_text(90))
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "prompt")
    return root


def test_the_scripted_qualities_differ_by_a_known_amount() -> None:
    assert expected_score(90) - expected_score(30) >= 0.4


def test_save_baseline_is_small_deterministic_and_secret_free(
    model: ScriptedProvider, repo: Path
) -> None:
    prompt = repo / "upper.prompt"
    prompt.write_text(
        prompt_text(90).replace("metrics:", "config:\n  api_key: sk-secret\nmetrics:")
    )
    assert main(["eval", str(prompt), "--save-baseline"]) == 0
    baseline = repo / "upper.baseline.json"
    first = baseline.read_text()
    assert main(["eval", str(prompt), "--save-baseline"]) == 0  # cached: the same scores
    assert baseline.read_text() == first
    data = json.loads(first)
    assert data["version"] == hashlib.sha256(prompt.read_bytes()).hexdigest()
    assert data["model"] == "scripted/test-model"
    assert data["aggregates"]["exact_match"] == pytest.approx(expected_score(90), abs=1e-6)
    assert set(data["examples"]) == set(WORDS)
    assert data["examples"]["w00"]["scores"]["exact_match"] in (0.0, 1.0)
    assert "sk-secret" not in first and "output" not in first
    assert list(data) == sorted(data)  # sorted keys: diffs stay small

    assert main(["eval", str(prompt), "--save-baseline", "--with-outputs"]) == 0
    with_outputs = json.loads(baseline.read_text())
    assert with_outputs["examples"]["w00"]["output"] in ("W00", "no idea")


def test_ci_scenario_on_a_fresh_clone(
    model: ScriptedProvider,
    repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["eval", str(repo / "upper.prompt"), "--save-baseline"]) == 0
    git(repo, "add", "upper.baseline.json")
    git(repo, "commit", "-q", "-m", "baseline")

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert not (clone / ".prompt-lsp").exists()  # a fresh clone: no local history
    prompt = clone / "upper.prompt"
    capsys.readouterr()

    # a regressing edit: the model now gets most examples wrong
    prompt.write_text(prompt_text(30))
    summary = tmp_path / "summary.md"
    code = main(["eval", str(prompt), "--check-baseline", "--summary", str(summary)])
    err = capsys.readouterr().err
    assert code == 1
    assert "baseline check FAILED" in err
    assert "exact_match is significantly below the baseline" in err
    drop = expected_score(30) - expected_score(90)
    assert f"Δ {drop:+.3f}".replace("-", "−") in err and "n = 24" in err
    markdown = summary.read_text()
    assert "❌ below the baseline" in markdown
    assert "| exact_match | baseline (" in markdown and "▼" in markdown
    assert "Most regressed examples" in markdown

    # a neutral edit (the same answers): within noise, exit 0
    prompt.write_text(prompt_text(90, extra=" Thank you."))
    assert main(["eval", str(prompt), "--check-baseline", "--format", "markdown"]) == 0
    captured = capsys.readouterr()
    assert "baseline check passed" in captured.err
    assert "✅ baseline check passed" in captured.out
    assert "| exact_match | baseline (" in captured.out and "| = |" in captured.out

    # --against HEAD~1: the prompt as first committed (the baseline commit did not change it)
    git(clone, "config", "user.email", "t@example.invalid")
    git(clone, "config", "user.name", "t")
    prompt.write_text(prompt_text(30))
    git(clone, "commit", "-q", "-am", "worse")
    junit = tmp_path / "r.xml"
    code = main(
        ["eval", str(prompt), "--against", "HEAD~1", "--json", str(tmp_path / "r.json")]
        + ["--junit", str(junit), "--summary", str(tmp_path / "against.md")]
    )
    against_md = (tmp_path / "against.md").read_text()
    assert "| exact_match | HEAD~1 (" in against_md
    assert "Upper-case the word (quality [-90).-]{+30).+}" in against_md  # the word diff
    err = capsys.readouterr().err
    properties = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    assert properties["previous.exact_match.delta"] == f"{drop:.4f}"
    assert properties["previous.exact_match.significant"] == "true"
    assert properties["previous.exact_match.n"] == "24"
    assert float(properties["previous.exact_match.ci_high"]) < 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0  # 30% still passes the 0.2 threshold: --against alone gates nothing
    assert report["previous_version"] == hashlib.sha256(prompt_text(90).encode()).hexdigest()
    assert report["deltas"]["exact_match"] == pytest.approx(drop)
    assert report["compared_with"].startswith("HEAD~1 (")
    stats = report["stats"]["exact_match"]
    assert stats["significant"] and stats["ci_high"] < 0 and stats["n"] == 24
    # the clone never evaluated that text, but the committed baseline scored exactly it
    assert "HEAD~1 scores from baseline" in err

    with pytest.raises(SystemExit):
        main(["eval", str(prompt), "--against"])
    assert main(["eval", str(prompt), "--against", "no-such-branch"]) == 2
    assert "not a commit" in capsys.readouterr().err
    assert main(["eval", str(prompt), "--against=--upload-pack=evil"]) == 2
    assert "not a git revision" in capsys.readouterr().err


def test_against_a_revision_never_evaluated_runs_it_through_the_cache(
    model: ScriptedProvider, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt = repo / "upper.prompt"
    prompt.write_text(prompt_text(30))
    calls = model.call_count
    assert main(["eval", str(prompt), "--against", "main"]) == 0
    assert model.call_count - calls == 2 * len(WORDS)  # both versions ran
    assert "main scores from evaluated" in capsys.readouterr().err
    assert main(["eval", str(prompt), "--against", "main"]) == 0
    assert model.call_count - calls == 2 * len(WORDS)  # and now both come from cache/history


def test_check_baseline_without_a_baseline_is_a_usage_error(
    model: ScriptedProvider, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(repo / "upper.prompt"), "--check-baseline"]) == 2
    assert "no baseline (upper.baseline.json)" in capsys.readouterr().err
    (repo / "upper.baseline.json").write_text("{not json")
    assert main(["eval", str(repo / "upper.prompt"), "--check-baseline"]) == 2
    assert "not JSON" in capsys.readouterr().err
    # a broken baseline does not stop a plain eval: it is a warning
    assert main(["eval", str(repo / "upper.prompt")]) == 0
    assert "baseline ignored" in capsys.readouterr().err


def test_a_folder_of_prompts_in_one_command_with_one_exit_code(
    model: ScriptedProvider, repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = repo / "more"
    sub.mkdir()
    shutil.copy(repo / "cases.jsonl", sub / "cases.jsonl")
    (sub / "good.prompt").write_text(prompt_text(90))
    (sub / "bad.prompt").write_text(prompt_text(5))  # under the 0.2 threshold
    junit = tmp_path / "all.xml"
    code = main(["eval", str(sub), "--junit", str(junit), "--json", str(tmp_path / "all.json")])
    assert code == 1
    assert "2 prompt(s) evaluated, 1 not ok" in capsys.readouterr().err
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert sorted(Path(s.get("name")).name for s in suites) == ["bad.prompt", "good.prompt"]
    reports = json.loads((tmp_path / "all.json").read_text())
    assert [r["failed_thresholds"] for r in reports] == [["exact_match"], []]
    (sub / "bad.prompt").unlink()
    assert main(["eval", str(sub)]) == 0
    assert main(["eval", str(tmp_path / "nothing-here")]) == 2


def test_repeats_measure_noise_and_only_changes_beyond_it_count(
    scripted: ScriptedProvider, tmp_path: Path
) -> None:
    """`solid` is always right in version A and always wrong in B; `noisy` is right in 2 of 4
    repeats in A and 1 of 4 in B: a move its own run-to-run spread explains."""

    def behaviour(prompt: str, attempt: int) -> Step:
        word = prompt.strip().split()[-1]
        if word == "solid":
            return Step(text="SOLID" if "version A" in prompt else "wrong")
        right_until = 2 if "version A" in prompt else 1
        return Step(text="NOISY" if attempt <= right_until else "wrong")

    scripted.script(behaviour)
    (tmp_path / ".git").mkdir()
    cases = [{"id": w, "input": {"word": w}, "expected": w.upper()} for w in ("solid", "noisy")]
    (tmp_path / "cases.jsonl").write_text("\n".join(json.dumps(c) for c in cases))
    prompt = tmp_path / "p.prompt"
    body = "---\nmodel: scripted/test-model\nexamples: cases.jsonl\nmetrics: [exact_match]\n"
    body += "eval:\n  repeat: 4\n  concurrency: 1\n---\nuser:\n{version}\n{{{{ word }}}}\n"
    prompt.write_text(body.format(version="version A"))
    assert main(["eval", str(prompt), "--save-baseline"]) == 0
    saved = json.loads((tmp_path / "p.baseline.json").read_text())
    assert saved["repeat"] == 4
    assert saved["examples"]["noisy"]["scores"]["exact_match"] == 0.5
    # the standard error of a mean of (1, 1, 0, 0): sd 0.57735 / √4
    assert saved["examples"]["noisy"]["noise"]["exact_match"] == pytest.approx(0.288675, abs=1e-6)
    assert saved["examples"]["solid"]["noise"]["exact_match"] == 0.0

    prompt.write_text(body.format(version="version B"))
    report_path = tmp_path / "r.json"
    main(["eval", str(prompt), "--json", str(report_path)])
    report = json.loads(report_path.read_text())
    flags = {c["id"]: (c["before"], c["after"], c["beyond_noise"]) for c in report["regressed"]}
    assert flags == {"solid": (1.0, 0.0, True), "noisy": (0.5, 0.25, False)}
    baseline_flags = {c["id"]: c["beyond_noise"] for c in report["baseline"]["regressed"]}
    assert baseline_flags == {"solid": True, "noisy": False}  # the baseline kept the noise


def test_a_baseline_symlinked_out_of_the_workspace_is_neither_read_nor_written(
    model: ScriptedProvider, repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("precious\n")
    (repo / "upper.baseline.json").symlink_to(outside)
    assert main(["eval", str(repo / "upper.prompt"), "--check-baseline"]) == 2
    assert "outside the workspace" in capsys.readouterr().err
    assert main(["eval", str(repo / "upper.prompt"), "--save-baseline"]) == 0
    assert outside.read_text() == "precious\n"  # the link was replaced, not followed
    saved = repo / "upper.baseline.json"
    assert not saved.is_symlink() and json.loads(saved.read_text())["file"] == "upper.prompt"
    assert saved.stat().st_mode & 0o777 == 0o644
