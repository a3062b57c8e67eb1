"""The history of evaluations: prompt versions, runs and per-example results, in SQLite.

`history.sqlite3` lives in the state folder (see `paths`). It is opened in WAL mode with a busy
timeout, and every write is one short `BEGIN IMMEDIATE` transaction, so two editors (or an
editor and a CI job) can record runs into the same file at once without losing either.
A run and all of its results are written together, so a reader never sees half a run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prompt_lsp.evaluation.results import CandidateRecord, ExampleResult, RunRecord
from prompt_lsp.history.paths import history_path_for, machine_id

# 2: live_runs, so a killed run shows as interrupted; 3: candidates of optimisations; 4: owner,
# so a history shipped in a repository is recognised. Every statement of the schema is IF NOT
# EXISTS, so opening an older database adds what it lacks.
SCHEMA_VERSION = 4
RUNNING = "running"  # a run recorded as it goes; "interrupted" once its process is gone
BUSY_TIMEOUT_MS = 15_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    file TEXT NOT NULL,
    sha TEXT NOT NULL,
    text TEXT NOT NULL,
    first_seen REAL NOT NULL,
    PRIMARY KEY (file, sha)
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    version TEXT NOT NULL,
    model TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    status TEXT NOT NULL,
    metrics TEXT NOT NULL,
    aggregates TEXT NOT NULL,
    stdev TEXT NOT NULL,
    cost REAL NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    n_ok INTEGER NOT NULL,
    n_failed INTEGER NOT NULL,
    total INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    repeat INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_version ON runs (file, version, status, finished_at);
CREATE INDEX IF NOT EXISTS runs_by_file ON runs (file, status, finished_at);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    example_index INTEGER NOT NULL,
    repeat INTEGER NOT NULL,
    example_id TEXT NOT NULL,
    inputs TEXT NOT NULL,
    expected TEXT NOT NULL,
    output TEXT,
    scores TEXT NOT NULL,
    reasons TEXT NOT NULL,
    latency_s REAL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    error TEXT,
    cached INTEGER NOT NULL,
    PRIMARY KEY (run_id, example_index, repeat)
);
CREATE TABLE IF NOT EXISTS owner (machine TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS live_runs (
    run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS candidates (
    optimization TEXT NOT NULL,
    file TEXT NOT NULL,
    base_version TEXT NOT NULL,
    version TEXT NOT NULL,
    text TEXT NOT NULL,
    change TEXT NOT NULL,
    generator TEXT NOT NULL,
    model TEXT NOT NULL,
    metric TEXT NOT NULL,
    validation REAL,
    validation_n INTEGER NOT NULL,
    test REAL,
    test_n INTEGER NOT NULL,
    created_at REAL NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (optimization, version)
);
CREATE INDEX IF NOT EXISTS candidates_by_file ON candidates (file, created_at);
"""


_CANDIDATE_COLUMNS = (
    "optimization",
    "file",
    "base_version",
    "version",
    "text",
    "change",
    "generator",
    "model",
    "metric",
    "validation",
    "validation_n",
    "test",
    "test_n",
    "created_at",
    "status",
)


_RUN_COLUMNS = (
    "id",
    "file",
    "version",
    "model",
    "started_at",
    "finished_at",
    "status",
    "metrics",
    "aggregates",
    "stdev",
    "cost",
    "prompt_tokens",
    "completion_tokens",
    "n_ok",
    "n_failed",
    "total",
    "duration_s",
    "repeat",
)  # the order of `_run_row`


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def new_run_id() -> str:
    """Unique across processes without coordination (two editors may record at once)."""
    return uuid.uuid4().hex


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


class Database:
    """One SQLite file opened on first use (see `open_database`), shared between threads under a
    lock. Subclasses name their `schema`."""

    schema = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_database(self.path, self.schema)
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class HistoryStore(Database):
    """Read and write `history.sqlite3`. Thread-safe; one connection per store."""

    schema = _SCHEMA

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._connection()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short immediate transaction: takes the write lock up front, so a concurrent
        writer waits (busy timeout) instead of failing half-way with SQLITE_BUSY."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ------------------------------------------------------------------ ownership

    def owner(self) -> str | None:
        """The machine id (see `paths.machine_id`) of whoever started this history; None for
        one from before owners were kept (it is claimed by the next run)."""
        with self._read() as conn:
            row = conn.execute("SELECT machine FROM owner LIMIT 1").fetchone()
        return str(row["machine"]) if row else None

    def trusted(self) -> bool:
        """Whether this history is this user's on this machine, not one that came with a
        cloned repository (whose runs, outputs and scores anyone could have written)."""
        return self.owner() in (None, machine_id())

    def _claim(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO owner SELECT ? WHERE NOT EXISTS (SELECT 1 FROM owner)", (machine_id(),)
        )

    # ------------------------------------------------------------------ writes

    def record_run(self, run: RunRecord, results: Iterable[ExampleResult], text: str) -> None:
        """Record a run, its results and the version's text, all in one transaction."""
        rows = [_result_row(run.id, r) for r in results]
        with self._write() as conn:
            self._insert_run(conn, run, text)
            conn.executemany(
                "INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )

    def begin_run(self, run: RunRecord, text: str) -> None:
        """Record a run as started (status "running", owned by this process), so that should
        the process die, the run and what finished of it still show, as interrupted."""
        with self._write() as conn:
            self._insert_run(conn, dataclasses.replace(run, status=RUNNING), text)
            conn.execute(
                "INSERT OR REPLACE INTO live_runs VALUES (?, ?, ?)",
                (run.id, socket.gethostname(), os.getpid()),
            )

    def _insert_run(self, conn: sqlite3.Connection, run: RunRecord, text: str) -> None:
        """The run's row, and its version's text unless already kept (claims the history)."""
        self._claim(conn)
        conn.execute(
            "INSERT OR IGNORE INTO versions (file, sha, text, first_seen) VALUES (?, ?, ?, ?)",
            (run.file, run.version, text, run.started_at),
        )
        conn.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", _run_row(run))

    def add_results(self, run_id: str, results: Iterable[ExampleResult]) -> None:
        """Keep finished results of a running run (one short transaction)."""
        rows = [_result_row(run_id, r) for r in results]
        if not rows:
            return
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )

    def finish_run(self, run: RunRecord, results: Iterable[ExampleResult]) -> None:
        """The final state of a run begun with `begin_run`: its status, aggregates and every
        result, in one transaction."""
        rows = [_result_row(run.id, r) for r in results]
        with self._write() as conn:
            values = _run_row(run)
            assignments = ", ".join(f"{column} = ?" for column in _RUN_COLUMNS[1:])
            conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values[1:], run.id))
            conn.executemany(
                "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )
            conn.execute("DELETE FROM live_runs WHERE run_id = ?", (run.id,))

    def record_candidate(self, candidate: CandidateRecord) -> None:
        """Insert or update one scored candidate of an optimisation (its test score and status
        are filled in later)."""
        row = tuple(getattr(candidate, name) for name in _CANDIDATE_COLUMNS)
        marks = ",".join("?" * len(row))
        with self._write() as conn:
            conn.execute(f"INSERT OR REPLACE INTO candidates VALUES ({marks})", row)

    def remember_version(self, file: str, version: str, text: str) -> None:
        """Keep a version's text (before `optimize --apply` replaces it) without a run."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO versions (file, sha, text, first_seen) VALUES (?, ?, ?, ?)",
                (file, version, text, time.time()),
            )

    # ------------------------------------------------------------------ reads

    def run_state(self, run: RunRecord) -> str:
        """What a run's status means now: a "running" run whose process is gone (killed, or
        the machine restarted) is "interrupted"."""
        if run.status != RUNNING:
            return run.status
        with self._read() as conn:
            owner = conn.execute(
                "SELECT host, pid FROM live_runs WHERE run_id = ?", (run.id,)
            ).fetchone()
        if owner is None or owner["host"] != socket.gethostname():
            return "interrupted" if owner is None else RUNNING
        return RUNNING if _process_alive(int(owner["pid"])) else "interrupted"

    def candidates_for_file(self, file: str, limit: int = 100) -> list[CandidateRecord]:
        """Newest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM candidates WHERE file = ? ORDER BY created_at DESC LIMIT ?",
                (file, limit),
            ).fetchall()
        return [CandidateRecord(**{name: row[name] for name in _CANDIDATE_COLUMNS}) for row in rows]

    def latest_run_for_version(
        self, file: str, version: str, statuses: tuple[str, ...] = ("ok",)
    ) -> RunRecord | None:
        """The latest run of this exact text (indexed; the editor asks on every edit)."""
        marks = ",".join("?" * len(statuses))
        with self._read() as conn:
            row = conn.execute(
                f"SELECT * FROM runs WHERE file = ? AND version = ? AND status IN ({marks})"
                " ORDER BY finished_at DESC LIMIT 1",
                (file, version, *statuses),
            ).fetchone()
        return _run_from_row(row) if row else None

    def previous_version_run(self, file: str, version: str) -> RunRecord | None:
        """The latest finished (status ok) run of the same file with a different text."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT * FROM runs WHERE file = ? AND status = 'ok' AND version != ?"
                " ORDER BY finished_at DESC LIMIT 1",
                (file, version),
            ).fetchone()
        return _run_from_row(row) if row else None

    def runs_for_file(self, file: str, limit: int = 100) -> list[RunRecord]:
        """Newest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM runs WHERE file = ? ORDER BY finished_at DESC LIMIT ?",
                (file, limit),
            ).fetchall()
        return [_run_from_row(r) for r in rows]

    def run(self, run_id: str) -> RunRecord | None:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run_from_row(row) if row else None

    def results_for_run(self, run_id: str) -> list[ExampleResult]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM results WHERE run_id = ? ORDER BY example_index, repeat",
                (run_id,),
            ).fetchall()
        return [_result_from_row(r) for r in rows]

    def count_results(self, run_id: str) -> int:
        with self._read() as conn:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,)
            ).fetchone()
        return int(count)

    def version_text(self, file: str, version: str) -> str | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT text FROM versions WHERE file = ? AND sha = ?", (file, version)
            ).fetchone()
        return str(row["text"]) if row else None


# ---------------------------------------------------------------------- sqlite helpers


def open_database(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating if needed) a WAL-mode database with a busy timeout and `schema`.

    An existing database at the current schema version is opened without a write, so the
    editor's lookups on every edit never wait for a writer's lock. Two processes may create the
    same file at once; switching to WAL can then meet a lock the busy handler does not cover,
    so setup is retried briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            _create_schema(conn, schema)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _create_schema(conn: sqlite3.Connection, schema: str) -> None:
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{schema}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
            )
            return
        except sqlite3.OperationalError as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _run_row(run: RunRecord) -> tuple[Any, ...]:
    return (
        run.id,
        run.file,
        run.version,
        run.model,
        run.started_at,
        run.finished_at,
        run.status,
        _dumps(run.metrics),
        _dumps(run.aggregates),
        _dumps(run.stdev),
        run.cost,
        run.prompt_tokens,
        run.completion_tokens,
        run.n_ok,
        run.n_failed,
        run.total,
        run.duration_s,
        run.repeat,
    )


def _run_from_row(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        file=row["file"],
        version=row["version"],
        model=row["model"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        status=row["status"],
        metrics=json.loads(row["metrics"]),
        aggregates=json.loads(row["aggregates"]),
        stdev=json.loads(row["stdev"]),
        cost=row["cost"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        n_ok=row["n_ok"],
        n_failed=row["n_failed"],
        total=row["total"],
        duration_s=row["duration_s"],
        repeat=row["repeat"],
    )


def _result_row(run_id: str, result: ExampleResult) -> tuple[Any, ...]:
    return (
        run_id,
        result.index,
        result.repeat,
        result.id,
        _dumps(result.inputs),
        _dumps(result.expected),
        result.output,
        _dumps(result.scores),
        _dumps(result.reasons),
        result.latency_s,
        result.prompt_tokens,
        result.completion_tokens,
        result.cost,
        result.error,
        int(result.cached),
    )


def _result_from_row(row: sqlite3.Row) -> ExampleResult:
    return ExampleResult(
        index=row["example_index"],
        id=row["example_id"],
        inputs=json.loads(row["inputs"]),
        expected=json.loads(row["expected"]),
        output=row["output"],
        scores=json.loads(row["scores"]),
        reasons=json.loads(row["reasons"]),
        latency_s=row["latency_s"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        cost=row["cost"],
        error=row["error"],
        cached=bool(row["cached"]),
        repeat=row["repeat"],
    )


def database_stamp(prompt_path: Path, workspace_root: Path | None = None) -> tuple[int, ...] | None:
    """When the history of `prompt_path` last changed (its WAL file takes every commit); None
    when there is no history yet."""
    database = history_path_for(prompt_path, workspace_root)
    stamps: list[int] = []
    for path in (database, database.with_name(database.name + "-wal")):
        try:
            stat = path.stat()
        except OSError:
            stamps.append(0)
            continue
        stamps += [stat.st_mtime_ns, stat.st_size]
    return tuple(stamps) if stamps[0] else None


def set_aside_untrusted(database: Path) -> Path | None:
    """Move a history that is not this user's (see `HistoryStore.trusted`) out of the way, so
    the next run starts a fresh one; returns where it went, or None when it was trusted."""
    if not database.is_file():
        return None
    store = HistoryStore(database)
    try:
        trusted = store.trusted()
    except sqlite3.DatabaseError:
        trusted = False  # not even a database: not ours either
    finally:
        store.close()
    if trusted:
        return None
    aside = database.with_name(f"{database.stem}.untrusted-{int(time.time())}{database.suffix}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{database}{suffix}")
        if source.exists():
            source.replace(Path(f"{aside}{suffix}"))
    return aside
