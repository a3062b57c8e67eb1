"""`prompt-lsp check`, run for real: `python -m prompt_lsp check …` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prompt_lsp import __version__

CLEAN = """\
---
name: clean
model: openai/gpt-4o-mini
input:
  schema:
    question: string
examples:
  - {input: {question: "Why?"}, expected: Because.}
metrics: [rougeL]
---
user:
{{ question }}
"""

WARNS = """\
---
name: warns
model: openai/gpt-4o-mini
examples: [{input: {}, expected: x}]
---
user:
<start>Say hi.
"""

BROKEN = """\
---
name: broken
model: openai/gpt-4o-mini
config:
  temperature: hot
input:
  schema:
    question: string
examples: [{input: {question: q}, expected: a}]
---
user:
{{ question | uper }} {{ other }}
"""

LINE = re.compile(
    r"^(?P<path>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<severity>\w+) (?P<code>[\w-]+) "
)


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "prompt_lsp", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def parsed_lines(stdout: str) -> list[tuple[str, int, int, str, str]]:
    rows = []
    for line in stdout.splitlines():
        match = LINE.match(line)
        assert match, f"not a finding line: {line!r}"
        rows.append(
            (
                match["path"],
                int(match["line"]),
                int(match["col"]),
                match["severity"],
                match["code"],
            )
        )
    return rows


def test_clean_file_exits_0_and_prints_nothing(tmp_path: Path) -> None:
    write(tmp_path, "clean.prompt", CLEAN)
    result = run("check", "clean.prompt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "1 file(s) checked: 0 error(s), 0 warning(s)" in result.stderr


def test_warnings_only_exit_0(tmp_path: Path) -> None:
    write(tmp_path, "warns.prompt", WARNS)
    result = run("check", "warns.prompt", cwd=tmp_path)
    assert result.returncode == 0
    assert parsed_lines(result.stdout) == [("warns.prompt", 7, 1, "warning", "unbalanced-token")]
    assert result.stdout == (
        "warns.prompt:7:1: warning unbalanced-token '<start>' is never closed with '<end>'.\n"
    )


def test_errors_exit_1_with_one_line_per_finding(tmp_path: Path) -> None:
    write(tmp_path, "broken.prompt", BROKEN)
    result = run("check", "broken.prompt", cwd=tmp_path)
    assert result.returncode == 1
    assert parsed_lines(result.stdout) == [
        ("broken.prompt", 5, 16, "error", "invalid-value"),
        ("broken.prompt", 12, 15, "error", "unknown-filter"),
        ("broken.prompt", 12, 26, "error", "undefined-variable"),
    ]
    assert "Did you mean 'upper'?" in result.stdout
    assert "1 file(s) checked: 3 error(s), 0 warning(s)" in result.stderr


def test_json_format(tmp_path: Path) -> None:
    write(tmp_path, "broken.prompt", BROKEN)
    result = run("check", "--format", "json", "broken.prompt", cwd=tmp_path)
    assert result.returncode == 1
    records = json.loads(result.stdout)
    assert [(r["line"], r["column"], r["severity"], r["code"]) for r in records] == [
        (5, 16, "error", "invalid-value"),
        (12, 15, "error", "unknown-filter"),
        (12, 26, "error", "undefined-variable"),
    ]
    filter_record = records[1]
    assert filter_record["path"] == "broken.prompt"
    assert (filter_record["end_line"], filter_record["end_column"]) == (12, 19)
    assert filter_record["fixes"] == ["Change filter to 'upper'"]
    # the one example lacks `other`: declared optional, the fix adds no new error
    assert records[2]["fixes"] == ["Declare 'other' in input.schema (optional)"]
    assert result.stderr == ""  # no summary line mixed into machine output


def test_json_format_clean_is_an_empty_list(tmp_path: Path) -> None:
    write(tmp_path, "clean.prompt", CLEAN)
    result = run("check", "--format", "json", "clean.prompt", cwd=tmp_path)
    assert result.returncode == 0
    assert json.loads(result.stdout) == []


def test_github_format(tmp_path: Path) -> None:
    write(tmp_path, "broken.prompt", BROKEN)
    write(tmp_path, "warns.prompt", WARNS)
    result = run("check", "--format", "github", "broken.prompt", "warns.prompt", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "::error file=broken.prompt,line=5,col=16,title=invalid-value::"
        "`temperature` must be a number from 0 to 2 (got 'hot')."
    )
    assert lines[-1].startswith("::warning file=warns.prompt,line=7,col=1,title=unbalanced-token::")
    assert len(lines) == 4


def test_github_format_escapes_percent_and_newlines(tmp_path: Path) -> None:
    # an information finding becomes a notice; messages never span lines
    write(tmp_path, "info.prompt", "---\nname: x\n---\nHello 100%\n")
    result = run("check", "--format", "github", "info.prompt", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("::notice file=info.prompt,line=1,col=1,title=no-examples::")
    assert all(line.startswith("::") for line in result.stdout.splitlines())


def test_directory_walk_is_recursive_and_picks_prompt_and_prompty(tmp_path: Path) -> None:
    write(tmp_path, "prompts/a.prompt", BROKEN)
    write(tmp_path, "prompts/nested/deeper/b.prompty", WARNS)
    write(tmp_path, "prompts/nested/c.prompt", CLEAN)
    write(tmp_path, "prompts/notes.txt", "{{ not checked")
    write(tmp_path, "prompts/node_modules/x.prompt", "{{ skipped")
    write(tmp_path, "prompts/.git/y.prompt", "{{ skipped")
    result = run("check", "prompts", cwd=tmp_path)
    assert result.returncode == 1
    paths = {row[0] for row in parsed_lines(result.stdout)}
    assert paths == {"prompts/a.prompt", "prompts/nested/deeper/b.prompty"}
    assert "3 file(s) checked: 3 error(s), 1 warning(s)" in result.stderr


def test_examples_file_findings_point_into_the_examples_file(tmp_path: Path) -> None:
    write(tmp_path, "p.prompt", "---\nexamples: cases.jsonl\n---\n{{ a }}\n")
    write(tmp_path, "cases.jsonl", '{"input": {"a": 1}}\n{oops\n')
    result = run("check", "p.prompt", cwd=tmp_path)
    assert result.returncode == 1
    assert parsed_lines(result.stdout) == [("cases.jsonl", 2, 1, "error", "examples-syntax")]


def test_absolute_paths_outside_the_working_directory(tmp_path: Path) -> None:
    target = write(tmp_path, "elsewhere/w.prompt", WARNS)
    work = tmp_path / "work"
    work.mkdir()
    result = run("check", target, cwd=work)
    assert result.returncode == 0
    assert parsed_lines(result.stdout)[0][0] == str(target)


def test_model_option_sets_the_default_model(tmp_path: Path) -> None:
    write(
        tmp_path,
        "chatml.prompt",
        "---\nexamples: [{input: {}}]\n---\n<|im_start|>user\nhi<|im_end|>\n",
    )
    gemma = run("check", "chatml.prompt", cwd=tmp_path)  # default model: local/gemma-3-270m
    assert {row[4] for row in parsed_lines(gemma.stdout)} == {"foreign-token"}
    chatml = run("check", "--model", "openai/gpt-4o-mini", "chatml.prompt", cwd=tmp_path)
    assert chatml.stdout == ""


# ----------------------------------------------------------------------------- usage problems


def test_missing_path_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = run("check", "nope.prompt", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "prompt-lsp: nope.prompt: no such file or directory\n"


def test_missing_path_among_good_ones_still_exits_2(tmp_path: Path) -> None:
    write(tmp_path, "clean.prompt", CLEAN)
    result = run("check", "clean.prompt", "gone/", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.prompt"
    os.mkfifo(fifo)
    result = run("check", "pipe.prompt", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "prompt-lsp: pipe.prompt: not a regular file\n"


def test_unreadable_file_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    # the tests run as root, so chmod 000 would not stop a read: use bytes that are not UTF-8
    (tmp_path / "latin1.prompt").write_bytes(b"---\nname: caf\xe9\n---\nhi\n")
    write(tmp_path, "clean.prompt", CLEAN)
    result = run("check", "latin1.prompt", "clean.prompt", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "prompt-lsp: latin1.prompt: cannot read: not UTF-8 text" in result.stderr
    assert result.stdout == ""  # the other file is still checked (and clean)
    assert "2 file(s) checked" in result.stderr


def test_a_directory_named_like_a_prompt_is_walked_not_read(tmp_path: Path) -> None:
    write(tmp_path, "odd.prompt/inner.prompt", WARNS)
    result = run("check", "odd.prompt", cwd=tmp_path)
    assert result.returncode == 0
    assert parsed_lines(result.stdout)[0][0] == "odd.prompt/inner.prompt"


@pytest.mark.parametrize(
    "args",
    [
        ("check",),  # no PATH
        ("check", "--format", "xml", "x.prompt"),
        ("frobnicate",),
        (),  # no command: help, exit 2
    ],
)
def test_usage_problems_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_version_and_help(tmp_path: Path) -> None:
    version = run("--version", cwd=tmp_path)
    assert version.returncode == 0
    assert version.stdout.strip() == f"prompt-lsp {__version__}"
    top = run("--help", cwd=tmp_path)
    assert top.returncode == 0 and "check" in top.stdout
    check_help = run("check", "--help", cwd=tmp_path)
    assert check_help.returncode == 0
    for option in ("--format", "{text,json,github}", "--model", "PATH"):
        assert option in check_help.stdout


def test_the_command_line_analyses_files_too_large_for_the_editor(tmp_path: Path) -> None:
    body = "Some prose line.\n" * 25_000 + "{{ undeclared }}\n"
    write(
        tmp_path,
        "huge.prompt",
        "---\ninput:\n  schema:\n    topic: string\n---\n{{ topic }}\n" + body,
    )
    result = run("check", "huge.prompt", cwd=tmp_path)
    assert result.returncode == 1
    assert "undefined-variable 'undeclared'" in result.stdout
    assert "too-large" not in result.stdout
