"""Where the emulator keeps its state between runs: one SQLite file under the data dir.

Every request ends with a `commit` that writes the objects it touched (new, changed or
removed), the clock, the lookup keys and new idempotency keys in one transaction; the
webhook queue is written as it changes. A restarted emulator loads all of it back, so the
Stripe ids the service keeps stay valid.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

FILE_NAME = "stripe_emulator.sqlite3"
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS object (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS object_seq ON object (seq);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, endpoint TEXT NOT NULL, fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL, body BLOB NOT NULL, request_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT NOT NULL, secret TEXT NOT NULL,
    enabled_events TEXT NOT NULL, event_id TEXT NOT NULL, attempts INTEGER NOT NULL,
    next_attempt REAL NOT NULL
);
"""


@dataclass(frozen=True)
class QueuedDelivery:
    id: int
    url: str
    secret: str
    enabled_events: tuple[str, ...]
    event_id: str
    attempts: int
    next_attempt: float


class Store:
    """One SQLite database; used from the emulator's event loop thread only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # The loop thread owns it; `check_same_thread=False` lets a test thread read it.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        version = self.meta("schema_version")
        if version is None:
            self.set_meta({"schema_version": SCHEMA_VERSION})
        elif version != SCHEMA_VERSION:
            raise RuntimeError(
                f"{path} holds emulator state of schema {version}, not {SCHEMA_VERSION}; "
                "start with --reset to begin afresh"
            )

    @classmethod
    def in_dir(cls, data_dir: Path) -> Store:
        return cls(data_dir / FILE_NAME)

    def close(self) -> None:
        self.db.close()

    # -- reading ------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def objects(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Every object with its insertion sequence, oldest first."""
        for seq, body in self.db.execute("SELECT seq, body FROM object ORDER BY seq"):
            yield int(seq), msgspec.json.decode(body)

    def idempotency(self) -> Iterator[tuple[str, str, str, int, bytes, str]]:
        rows = self.db.execute(
            "SELECT key, endpoint, fingerprint, status, body, request_id FROM idempotency"
        )
        for key, endpoint, fingerprint, status, body, request_id in rows:
            yield str(key), str(endpoint), str(fingerprint), int(status), bytes(body), request_id

    def queued(self) -> list[QueuedDelivery]:
        rows = self.db.execute(
            "SELECT id, url, secret, enabled_events, event_id, attempts, next_attempt"
            " FROM webhook_queue ORDER BY id"
        )
        return [
            QueuedDelivery(
                int(r[0]), r[1], r[2], tuple(json.loads(r[3])), r[4], int(r[5]), float(r[6])
            )
            for r in rows
        ]

    # -- writing ------------------------------------------------------------------------

    def commit(
        self,
        upserts: list[tuple[str, str, int, bytes]],
        deletes: list[str],
        meta: dict[str, str],
        idempotency: list[tuple[str, str, str, int, bytes, str]],
    ) -> None:
        """Write one request's changes atomically."""
        self.db.execute("BEGIN")
        try:
            self.db.executemany(
                "INSERT INTO object (id, kind, seq, body) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                upserts,
            )
            self.db.executemany("DELETE FROM object WHERE id = ?", [(i,) for i in deletes])
            self._meta(meta)
            self.db.executemany(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?, ?)", idempotency
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def set_meta(self, values: dict[str, str]) -> None:
        self._meta(values)

    def _meta(self, values: dict[str, str]) -> None:
        self.db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def enqueue(
        self, url: str, secret: str, enabled_events: tuple[str, ...], event_id: str, at: float
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO webhook_queue (url, secret, enabled_events, event_id, attempts,"
            " next_attempt) VALUES (?, ?, ?, ?, 0, ?)",
            (url, secret, json.dumps(list(enabled_events)), event_id, at),
        )
        return int(cursor.lastrowid or 0)

    def reschedule(self, delivery_id: int, attempts: int, at: float) -> None:
        self.db.execute(
            "UPDATE webhook_queue SET attempts = ?, next_attempt = ? WHERE id = ?",
            (attempts, at, delivery_id),
        )

    def dequeue(self, delivery_id: int) -> None:
        self.db.execute("DELETE FROM webhook_queue WHERE id = ?", (delivery_id,))

    def reset(self) -> None:
        """Forget everything but the schema (the documented reset)."""
        self.db.execute("BEGIN")
        for table in ("object", "idempotency", "webhook_queue", "meta"):
            self.db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
        self._meta({"schema_version": SCHEMA_VERSION})
        self.db.execute("COMMIT")
