"""The response cache: re-running an unchanged prompt makes no model call.

`cache.sqlite3` in the user's cache folder (`paths.response_cache_path`) maps a key — the SHA-256 of the model, the rendered
messages, the call config (keys replaced by their hashes) and the repeat index — to the reply text and its
usage. Only successful replies are stored; errors are never cached.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prompt_lsp.history.store import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    output TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    latency_s REAL NOT NULL,
    created_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class CachedReply:
    output: str
    prompt_tokens: int
    completion_tokens: int
    cost: float  # what the original call cost (a cache hit itself costs nothing)
    latency_s: float  # how long the original call took


def cache_key(
    model: str, messages: list[dict[str, str]], config: dict[str, Any], repeat: int
) -> str:
    """SHA-256 over a canonical JSON of everything that determines the reply.

    `config` must hold no key in clear (see `format.secrets.hash_secrets`): the cache key is
    stored on disk."""
    payload = json.dumps(
        {"model": model, "messages": messages, "config": config, "repeat": repeat},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


class ResponseCache(Database):
    """Thread-safe access to `cache.sqlite3`; the database is opened on first use."""

    schema = _SCHEMA

    def get(self, key: str) -> CachedReply | None:
        with self._lock:
            row = (
                self._connection()
                .execute(
                    "SELECT output, prompt_tokens, completion_tokens, cost, latency_s"
                    " FROM responses WHERE key = ?",
                    (key,),
                )
                .fetchone()
            )
        return CachedReply(*row) if row else None

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedReply]:
        """Look many keys up at once (a fully cached run of 1,000 examples in one query)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, CachedReply] = {}
        with self._lock:
            conn = self._connection()
            for start in range(0, len(wanted), 500):  # stay under SQLite's variable limit
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in conn.execute(
                    "SELECT key, output, prompt_tokens, completion_tokens, cost, latency_s"
                    f" FROM responses WHERE key IN ({marks})",
                    chunk,
                ):
                    found[row[0]] = CachedReply(*tuple(row)[1:])
        return found

    def put(self, key: str, model: str, reply: CachedReply) -> None:
        self.put_many([(key, model, reply)])

    def put_many(self, entries: Iterable[tuple[str, str, CachedReply]]) -> None:
        """Store many replies in one transaction (the runner writes in batches, off the
        event loop: one commit per call costs more than the call's own client work)."""
        now = time.time()
        rows = [
            (
                key,
                model,
                reply.output,
                reply.prompt_tokens,
                reply.completion_tokens,
                reply.cost,
                reply.latency_s,
                now,
            )
            for key, model, reply in entries
        ]
        if not rows:
            return
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?)", rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
