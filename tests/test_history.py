"""History store, state folder rules and version comparison."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from prompt_lsp.evaluation.results import ExampleResult, ExampleScores, RunRecord
from prompt_lsp.history.compare import (
    compare_runs,
    compare_with_previous,
    example_changes,
    last_two_versions,
    latest_run_for_version,
    metric_deltas,
)
from prompt_lsp.history.paths import ensure_state_dir, file_key, state_dir_for
from prompt_lsp.history.store import HistoryStore, new_run_id

# ---------------------------------------------------------------------------- state folder


def test_state_dir_prefers_the_workspace_root(tmp_path: Path) -> None:
    prompt = tmp_path / "a" / "b" / "x.prompt"
    prompt.parent.mkdir(parents=True)
    assert state_dir_for(prompt, tmp_path) == tmp_path.resolve() / ".prompt-lsp"


def test_state_dir_finds_the_nearest_marker(tmp_path: Path) -> None:
    prompt = tmp_path / "repo" / "prompts" / "x.prompt"
    prompt.parent.mkdir(parents=True)
    assert state_dir_for(prompt) == prompt.parent.resolve() / ".prompt-lsp"  # no marker
    (tmp_path / "repo" / ".git").mkdir()
    assert state_dir_for(prompt) == (tmp_path / "repo").resolve() / ".prompt-lsp"
    (prompt.parent / ".prompt-lsp").mkdir()
    assert state_dir_for(prompt) == prompt.parent.resolve() / ".prompt-lsp"


def test_ensure_state_dir_ignores_itself_in_git(tmp_path: Path) -> None:
    folder = ensure_state_dir(tmp_path / ".prompt-lsp")
    assert (folder / ".gitignore").read_text() == "*\n"


def test_file_key_is_relative_and_posix(tmp_path: Path) -> None:
    assert file_key(tmp_path / "p" / "x.prompt", tmp_path) == "p/x.prompt"
    outside = tmp_path.parent / "elsewhere.prompt"
    assert file_key(outside, tmp_path) == outside.resolve().as_posix()


# ---------------------------------------------------------------------------- helpers


def make_run(
    version: str,
    aggregates: dict[str, float | None],
    finished_at: float,
    status: str = "ok",
    file: str = "p.prompt",
    metrics: tuple[str, ...] = ("rougeL", "exact_match"),
) -> RunRecord:
    return RunRecord(
        id=new_run_id(),
        file=file,
        version=version,
        model="scripted/test-model",
        started_at=finished_at - 1,
        finished_at=finished_at,
        status=status,
        metrics=[{"name": m} for m in metrics],
        aggregates=aggregates,
        stdev={},
        cost=0.0,
        prompt_tokens=10,
        completion_tokens=5,
        n_ok=2,
        n_failed=0,
        total=2,
        duration_s=1.0,
    )


def result(example_id: str, index: int, output: str, **scores: float | None) -> ExampleResult:
    return ExampleResult(
        index=index,
        id=example_id,
        inputs={"q": example_id},
        expected="e",
        output=output,
        scores=dict(scores),
        latency_s=0.1,
    )


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    with HistoryStore(tmp_path / ".prompt-lsp" / "history.sqlite3") as history:
        yield history


# ---------------------------------------------------------------------------- store


def test_round_trip(store: HistoryStore) -> None:
    run = make_run("v1", {"rougeL": 0.5, "exact_match": None}, 100.0)
    results = [result("a", 0, "out a", rougeL=0.5, exact_match=None)]
    results[0].reasons = {"exact_match": "no expected"}
    store.record_run(run, results, "text v1")
    assert store.run(run.id) == run
    assert store.results_for_run(run.id) == results
    assert store.version_text("p.prompt", "v1") == "text v1"
    assert store.latest_run_for_version("p.prompt", "v1") == run
    assert store.latest_run_for_version("p.prompt", "v2") is None


def test_database_is_wal_with_indexes(store: HistoryStore) -> None:
    store.record_run(make_run("v1", {}, 1.0), [], "t")
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM runs WHERE file = ? AND version = ? AND status IN (?)"
        " ORDER BY finished_at DESC LIMIT 1",
        ("p.prompt", "v1", "ok"),
    ).fetchall()
    assert "runs_by_version" in " ".join(str(row[-1]) for row in plan)
    conn.close()


def test_latest_run_for_version_ignores_cancelled_runs(store: HistoryStore) -> None:
    ok = make_run("v1", {"rougeL": 0.4}, 10.0)
    cancelled = make_run("v1", {"rougeL": 0.9}, 20.0, status="cancelled")
    store.record_run(ok, [], "t")
    store.record_run(cancelled, [], "t")
    assert latest_run_for_version(store, "p.prompt", "v1") == ok


# ---------------------------------------------------------------------------- comparison


def test_comparison_numbers(store: HistoryStore) -> None:
    old = make_run("v1", {"rougeL": 0.5, "exact_match": 0.5}, 10.0)
    store.record_run(
        old,
        [
            result("a", 0, "old a", rougeL=0.2, exact_match=0.0),
            result("b", 1, "old b", rougeL=0.8, exact_match=1.0),
            result("c", 2, "old c", rougeL=0.5, exact_match=0.5),
        ],
        "line one\nline two\n",
    )
    new = make_run("v2", {"rougeL": 0.6, "exact_match": 0.25}, 20.0)
    new_results = [
        result("a", 0, "new a", rougeL=0.7, exact_match=0.0),
        result("b", 1, "new b", rougeL=0.6, exact_match=0.5),
        result("c", 2, "new c", rougeL=0.5, exact_match=0.25),
    ]
    store.record_run(new, new_results, "line one\nline 2\n")

    comparison = compare_with_previous(store, new)
    assert comparison is not None
    assert comparison.previous_run_id == old.id
    # deltas by hand: 0.6 - 0.5 = 0.1, 0.25 - 0.5 = -0.25
    assert comparison.deltas["rougeL"] == pytest.approx(0.1)
    assert comparison.deltas["exact_match"] == pytest.approx(-0.25)
    # headline rougeL: a went 0.2 -> 0.7 (improved), b 0.8 -> 0.6 (regressed), c unchanged
    assert [(c.example_id, c.before, c.after) for c in comparison.improved] == [("a", 0.2, 0.7)]
    assert [(c.example_id, c.before, c.after) for c in comparison.regressed] == [("b", 0.8, 0.6)]
    assert comparison.regressed[0].before_output == "old b"
    assert comparison.regressed[0].after_output == "new b"
    assert "-line two\n" in comparison.diff and "+line 2\n" in comparison.diff

    assert last_two_versions(store, "p.prompt") == (new, old)


def test_previous_version_skips_same_text_and_unfinished_runs(store: HistoryStore) -> None:
    older = make_run("v1", {"rougeL": 0.1}, 10.0)
    failed = make_run("v0", {"rougeL": None}, 15.0, status="failed")
    same = make_run("v2", {"rougeL": 0.3}, 20.0)
    current = make_run("v2", {"rougeL": 0.4}, 30.0)
    for run in (older, failed, same, current):
        store.record_run(run, [], f"text {run.version}")
    comparison = compare_with_previous(store, current)
    assert comparison is not None and comparison.previous_version == "v1"
    assert comparison.deltas == {"rougeL": pytest.approx(0.3)}


def test_first_version_has_no_comparison(store: HistoryStore) -> None:
    run = make_run("v1", {"rougeL": 0.1}, 10.0)
    store.record_run(run, [], "t")
    assert compare_with_previous(store, run) is None
    assert last_two_versions(store, "p.prompt") is None


def test_metric_deltas_with_missing_values() -> None:
    assert metric_deltas({"a": 0.5, "b": None, "c": 0.2}, {"a": 0.25, "b": 0.1}) == {
        "a": 0.25,
        "b": None,
        "c": None,
    }


def test_example_changes_average_repeats() -> None:
    before = [result("a", 0, "x", m=0.0), result("a", 0, "y", m=1.0)]
    after = [result("a", 0, "z", m=1.0), result("a", 0, "w", m=1.0)]
    improved, regressed = example_changes(
        ExampleScores.from_results(after, ["m"]), ExampleScores.from_results(before, ["m"]), "m"
    )
    assert [(c.before, c.after) for c in improved] == [(0.5, 1.0)] and not regressed


def test_compare_runs_directly(store: HistoryStore) -> None:
    a = make_run("v1", {"rougeL": 0.2}, 1.0, metrics=("rougeL",))
    b = make_run("v2", {"rougeL": 0.3}, 2.0, metrics=("rougeL",))
    store.record_run(a, [result("x", 0, "o", rougeL=0.2)], "a\n")
    store.record_run(b, [result("x", 0, "p", rougeL=0.3)], "b\n")
    comparison = compare_runs(store, b, a)
    assert comparison.deltas["rougeL"] == pytest.approx(0.1)
    assert comparison.improved[0].delta == pytest.approx(0.1)


# ---------------------------------------------------------------------------- two processes


def _write_runs(database: str, writer: int, count: int) -> None:
    with HistoryStore(Path(database)) as history:
        for i in range(count):
            run = make_run(f"w{writer}-{i}", {"rougeL": i / count}, float(i))
            results = [result(f"e{j}", j, f"out {writer} {i} {j}", rougeL=0.5) for j in range(20)]
            history.record_run(run, results, f"text from writer {writer}, run {i}")


def test_two_processes_write_concurrently_without_loss(tmp_path: Path) -> None:
    database = tmp_path / ".prompt-lsp" / "history.sqlite3"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_runs, args=(str(database), w, 40)) for w in (1, 2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
        assert process.exitcode == 0
    conn = sqlite3.connect(database)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 80
    assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 80 * 20
    assert conn.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 80
    conn.close()
