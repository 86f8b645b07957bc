"""The webhook event log: one small SQLite file the receiver appends to and the sensors read.

Why SQLite: the receiver must answer Kustomer within its timeout and never lose an event it
acknowledged, and the sensor runs in another process. A WAL-mode SQLite file gives both with
the standard library: each accepted event is one committed (fsynced, `synchronous=FULL`)
transaction, readers never block the writer, and a restart of either process loses nothing.
It lives on a local disk (`<KUSTOMER_DELTA_ROOT>/_webhooks/` for a local root, or the folder in
KUSTOMER_WEBHOOK_STORE, which an object-store root needs: SQLite cannot live on S3).

Redeliveries are idempotent: a row is unique by the envelope's event id and by
(object type, object id, updatedAt), so Kustomer retrying a delivery we already committed, or
two events carrying the same version of a record, store one row.

What the sensors make of it is in `backoff` (polling) and `sensor` (runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kustomer_assets.environment import positive_int_env
from kustomer_assets.timestamps import iso_ms
from kustomer_assets.webhooks.events import WebhookEvent, parse_time

ROOT_VARIABLE = "KUSTOMER_DELTA_ROOT"
DEFAULT_DELTA_ROOT = "data/delta"
"""The same as `lake.store.ROOT_VARIABLE` and `resources.DEFAULT_DELTA_ROOT` (a test checks):
repeated so the receiver process imports neither dagster nor polars."""

ENV_STORE = "KUSTOMER_WEBHOOK_STORE"
ENV_RETENTION_DAYS = "KUSTOMER_WEBHOOK_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 14
"""Events (raw bodies included, for replay) older than this are pruned by the receiver."""
STORE_SUBFOLDER = "_webhooks"
STORE_FILE = "events.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    event_id TEXT,
    event_name TEXT,
    object_type TEXT,
    object_id TEXT NOT NULL,
    updated_at TEXT,
    problems TEXT,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_event_id
    ON events (event_id) WHERE event_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS events_by_version
    ON events (object_type, object_id, updated_at)
    WHERE object_type IS NOT NULL AND updated_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_received_at ON events (received_at);
CREATE TABLE IF NOT EXISTS readers (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    read_at TEXT NOT NULL
);
"""
"""`seq` is AUTOINCREMENT so a pruned row's number is never reused: the sensor's cursor (the
last seq it read) stays valid across pruning. `readers` says who last read the log and when:
the polling sensor rests only while the webhook sensor is really working the events off."""

_COLUMNS = "seq, received_at, event_id, event_name, object_type, object_id, updated_at, problems"


def webhook_store_folder() -> Path | None:
    """Where the event log lives, from the environment; None when it cannot be local.

    KUSTOMER_WEBHOOK_STORE wins; otherwise `<KUSTOMER_DELTA_ROOT>/_webhooks` for a local root.
    An object-store root without KUSTOMER_WEBHOOK_STORE has no store: webhooks are off and
    polling goes on as before.
    """
    explicit = (os.getenv(ENV_STORE) or "").strip()
    if explicit:
        if "://" in explicit and not explicit.startswith("file://"):
            raise ValueError(
                f"{ENV_STORE} must be a local folder (SQLite cannot live on an object store), "
                f"got a URI."
            )
        return Path(explicit.removeprefix("file://")).expanduser().absolute()
    return folder_beside((os.getenv(ROOT_VARIABLE) or "").strip() or DEFAULT_DELTA_ROOT)


def folder_beside(root: str) -> Path | None:
    """The event log's folder beside a local Delta root; None for an object-store root (SQLite
    needs a local disk)."""
    if "://" in root and not root.startswith("file://"):
        return None
    return Path(root.removeprefix("file://")).expanduser().absolute() / STORE_SUBFOLDER


def retention() -> timedelta:
    return timedelta(days=positive_int_env(ENV_RETENTION_DAYS, DEFAULT_RETENTION_DAYS))


@dataclass(frozen=True)
class StoredEvent:
    """One row of the log, without its body (`WebhookStore.body` reads that for a replay)."""

    seq: int
    received_at: datetime
    event_id: str | None
    event_name: str | None
    object_type: str | None
    object_id: str
    updated_at: datetime | None
    problems: tuple[str, ...]

    @property
    def changed_at(self) -> datetime:
        """When the record changed: its updatedAt, else when the event arrived."""
        return self.updated_at or self.received_at


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit: each statement is its own transaction, committed (and fsynced) on return.
    connection = sqlite3.connect(
        str(path), timeout=30.0, isolation_level=None, check_same_thread=False
    )
    connection.execute("PRAGMA busy_timeout = 30000")
    return connection


class WebhookStore:
    """The event log at `<folder>/events.sqlite3`; safe to share between threads."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / STORE_FILE
        self._lock = threading.Lock()
        self._db = _connect(self.path)
        with self._lock:
            self._db.execute("PRAGMA journal_mode = WAL")
            # FULL: the WAL is fsynced at every commit, so an acknowledged event survives a
            # power cut, not only a process crash (NORMAL would only survive the latter).
            self._db.execute("PRAGMA synchronous = FULL")
            if self._db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                self._db.executescript(_SCHEMA)  # only the first open writes: readers do not
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @classmethod
    def existing(cls, folder: Path | str) -> WebhookStore | None:
        """The store if the receiver ever created it; a sensor never creates one."""
        return cls(folder) if (Path(folder) / STORE_FILE).exists() else None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> WebhookStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------------------

    def add(self, event: WebhookEvent, body: bytes, received_at: datetime) -> tuple[bool, int]:
        """Append one event; (True, its seq), or (False, the seq already holding it).

        The look-up comes first, in the same IMMEDIATE transaction as the insert, so that a
        redelivery neither writes nor burns a seq; the unique indexes are the backstop.
        """
        updated = iso_ms(event.updated_at) if event.updated_at is not None else None
        problems = json.dumps(list(event.problems)) if event.problems else None
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT seq FROM events WHERE (event_id IS NOT NULL AND event_id = ?)"
                    " OR (object_type = ? AND object_id = ? AND updated_at = ?) LIMIT 1",
                    (event.event_id, event.object_type, event.object_id, updated),
                ).fetchone()
                if row is not None:
                    self._db.execute("ROLLBACK")
                    return False, int(row[0])
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO events (received_at, event_id, event_name,"
                    " object_type, object_id, updated_at, problems, body)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        iso_ms(received_at),
                        event.event_id,
                        event.event_name,
                        event.object_type,
                        event.object_id,
                        updated,
                        problems,
                        sqlite3.Binary(body),
                    ),
                )
                self._db.execute("COMMIT")  # synchronous=FULL: on disk when this returns
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            return cursor.rowcount == 1, int(cursor.lastrowid or 0)

    def mark_read(self, reader: str, seq: int, at: datetime) -> None:
        """Record that `reader` has read up to `seq` at `at` (advisory: see `backoff`)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO readers (name, seq, read_at) VALUES (?, ?, ?) ON CONFLICT (name)"
                " DO UPDATE SET seq = excluded.seq, read_at = excluded.read_at",
                (reader, seq, iso_ms(at)),
            )

    def last_read(self, reader: str) -> tuple[int, datetime] | None:
        """(seq, when) `reader` last read the log, or None if it never did."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, read_at FROM readers WHERE name = ?", (reader,)
            ).fetchone()
        moment = parse_time(row[1]) if row else None
        return (int(row[0]), moment) if row and moment else None

    def last_seq(self) -> int:
        """The highest seq ever given (pruned rows included); 0 for a new log."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
            ).fetchone()
        return int(row[0]) if row else 0

    def prune(self, before: datetime) -> int:
        """Drop events received before `before`; returns how many."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM events WHERE received_at < ?", (iso_ms(before),))
            return cursor.rowcount

    # -- reads -----------------------------------------------------------------------------

    def after(self, seq: int, limit: int = 10_000) -> list[StoredEvent]:
        """Events with a seq above `seq`, oldest first, at most `limit`."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return [_stored(row) for row in rows]

    def body(self, seq: int) -> bytes | None:
        """The raw body of an event as it was received (for a replay or a bug report)."""
        with self._lock:
            row = self._db.execute("SELECT body FROM events WHERE seq = ?", (seq,)).fetchone()
        return bytes(row[0]) if row else None

    def latest_received_at(self) -> datetime | None:
        with self._lock:
            row = self._db.execute("SELECT max(received_at) FROM events").fetchone()
        return parse_time(row[0]) if row and row[0] else None

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])


def _stored(row: tuple) -> StoredEvent:
    seq, received, event_id, name, type_, id_, updated, problems = row
    return StoredEvent(
        seq=int(seq),
        received_at=parse_time(received) or datetime.fromtimestamp(0, UTC),
        event_id=event_id,
        event_name=name,
        object_type=type_,
        object_id=id_,
        updated_at=parse_time(updated) if updated else None,
        problems=tuple(json.loads(problems)) if problems else (),
    )
