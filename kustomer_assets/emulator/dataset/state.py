"""The emulator's org as it stands: every record, the custom-attribute metadata, the clock.

Reads live here; the ways the org changes (`change`, `create`, deletes, merges, `patch`) are the
`DatasetMutations` methods it inherits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random
from typing import Any

from .jsonapi import is_deleted
from .mutations import DatasetMutations
from .timestamps import SEARCHABLE_MS, dt_to_ms


@dataclass
class Dataset(DatasetMutations):
    """The emulator's current state: every record of every type, plus custom-attribute metadata.

    Records are replaced, never edited in place, by mutations (copy-on-write), so a handler that
    took a list of resources under `lock` can serialise them after releasing it.
    """

    seed: int
    days: int
    start: datetime
    now: datetime
    records: dict[str, dict[str, dict[str, Any]]]
    metadata: dict[str, dict[str, Any]]
    current_user_id: str
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    version: int = 0
    children: dict[str, dict[str, list[str]]] = field(default_factory=dict, repr=False)
    bulk_updated_at: str | None = None
    _mono0: float = field(default_factory=time.monotonic, repr=False)
    _offset_ms: int = 0
    _mut_rng: Random = field(default_factory=Random, repr=False)
    _last_stamp: int = 0
    # Hard-deleted ids per type, and merged customers (loser -> survivor): a reconciliation by
    # ids is the only way a client can notice either, so tests need the ground truth.
    hard_deleted: dict[str, list[str]] = field(default_factory=dict, repr=False)
    merged: dict[str, str] = field(default_factory=dict, repr=False)
    # Called as listener(action, type, new record, previous record or None) each time a
    # mutation stores a record ("create" / "update"); the emulator's outbound webhooks. They
    # run under `lock`, so they must only hand the records on (records are copy-on-write).
    listeners: list[Callable[[str, str, dict[str, Any], dict[str, Any] | None], None]] = field(
        default_factory=list, repr=False
    )

    # -- clock -----------------------------------------------------------------------------

    def clock_ms(self) -> int:
        """Emulated wall clock: `now` plus real time elapsed since generation (plus `advance`)."""
        elapsed = int((time.monotonic() - self._mono0) * 1000)
        return dt_to_ms(self.now) + elapsed + self._offset_ms

    def clock(self) -> datetime:
        return datetime.fromtimestamp(self.clock_ms() / 1000, UTC)

    def advance(self, seconds: float) -> None:
        """Move the emulated clock forward (tests use it instead of sleeping)."""
        with self.lock:
            self._offset_ms += int(seconds * 1000)

    def searchable_since_ms(self) -> int:
        return self.clock_ms() - SEARCHABLE_MS

    # -- reads -----------------------------------------------------------------------------

    def get(self, type_: str, id_: str) -> dict[str, Any] | None:
        return self.records.get(type_, {}).get(id_)

    def all(self, type_: str, include_deleted: bool = True) -> list[dict[str, Any]]:
        with self.lock:
            items = list(self.records.get(type_, {}).values())
        if include_deleted:
            return items
        return [r for r in items if not is_deleted(r)]

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {t: len(v) for t, v in self.records.items()}

    def children_of(self, type_: str, conversation_id: str) -> list[dict[str, Any]]:
        with self.lock:
            ids = list(self.children.get(type_, {}).get(conversation_id, ()))
            recs = self.records.get(type_, {})
            return [recs[i] for i in ids if i in recs]
