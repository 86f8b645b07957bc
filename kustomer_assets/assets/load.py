"""Load one window of one entity: fetch pages, map them to rows, replace the window's days.

Kept apart from the asset factory so that the factory only plans windows and reports, and so
that a window is the unit a retried backfill can skip.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from kustomer_assets.assets.lookups import ids_to_fetch
from kustomer_assets.entities import ByIdSource, EntitySpec
from kustomer_assets.extract import WindowFetch
from kustomer_assets.kustomer import KustomerClient
from kustomer_assets.lake import DeltaStore, WriteSummary
from kustomer_assets.lake.partitions import PartitionReplacement
from kustomer_assets.records import UNPARSED_COLUMN

BATCH_RECORDS = 5_000
"""Records mapped and staged per batch: bounds memory whatever the size of the history."""

PROGRESS_EVERY_PAGES = 20

PROGRESS_EVERY_RECORDS = 500
"""By-id phases (CSAT answers, referenced customers) cost one request per record, about a
minute per 500 at the default org share: a line that often shows they are moving."""

NOTE_RUN = "kustomer_assets.run"
NOTE_WINDOW = "kustomer_assets.window"
NOTE_RESULT = "kustomer_assets.result"


@dataclass
class WindowLoad:
    """What one window wrote; also stored in the Delta commit so a retry can reuse it."""

    window: str
    rows: int = 0
    rows_per_day: dict[str, int] = field(default_factory=dict)
    reported_total: int | None = None
    records_fetched: int = 0
    duplicates_dropped: int = 0
    rows_outside_window: int = 0
    not_found: int = 0
    api_count_after: int | None = None
    """What Kustomer counted for the window when it had been read (records move meanwhile)."""
    changed_during_run: int = 0
    refetched: int = 0
    unaccounted: int = 0
    verified_by: str = ""
    unparsed_rows: int = 0
    """Rows holding a value that did not fit its column, kept as text in `unparsed_values`."""
    schema_changes: list[str] = field(default_factory=list)
    """How drifting column types were written (widened, cast, or kept in a sibling column)."""
    commit_retries: int = 0
    columns: dict[str, str] = field(default_factory=dict)
    delta_version: int | None = None
    resumed: bool = False

    def note(self, run: str, summary: WriteSummary) -> dict[str, str]:
        """The commit note: this load, completed by what the lake is about to commit."""
        self.rows = summary.rows
        self.rows_per_day = summary.rows_per_day
        self.duplicates_dropped = summary.duplicates_dropped
        self.rows_outside_window = summary.rows_outside_window
        self.schema_changes = summary.schema_changes
        result = {
            k: v
            for k, v in self.__dict__.items()
            if k not in {"columns", "resumed", "delta_version"}
        }
        return {NOTE_RUN: run, NOTE_WINDOW: self.window, NOTE_RESULT: json.dumps(result)}

    @classmethod
    def from_note(cls, note: dict[str, Any]) -> WindowLoad:
        return cls(**json.loads(note[NOTE_RESULT]), resumed=True)


def window_key(first_day: date, end_day: date) -> str:
    return f"{first_day.isoformat()}/{end_day.isoformat()}"


def load_window(
    spec: EntitySpec,
    client: KustomerClient,
    store: DeltaStore,
    days: tuple[date, date],
    start: datetime,
    end: datetime,
    run: str,
    log: logging.Logger | Any,
) -> WindowLoad:
    """Fetch `[start, end)` of `spec` and replace the table's `days` with it, atomically."""
    first_day, end_day = days
    source = spec.source
    by_id = isinstance(source, ByIdSource)
    ids = ids_to_fetch(store, spec.name, source, start, end) if by_id else []
    fetch = WindowFetch(spec, client, start, end, ids=ids)
    load = WindowLoad(window=window_key(first_day, end_day))
    with store.replace_days(spec.name, first_day, end_day, spec.mapper.base_schema) as replacement:
        batch = RecordBatches(spec, replacement, load)

        what = source.what if isinstance(source, ByIdSource) else "records"
        by_id_progress = ByIdProgress(spec.name, load.window, what, len(ids), log)
        if ids:
            by_id_progress.start()
        for pages, page in enumerate(fetch, start=1):
            batch.extend(page)
            if by_id:
                by_id_progress.advance(fetch.records + fetch.not_found, client)
            elif pages % PROGRESS_EVERY_PAGES == 0:
                log.info(
                    "%s %s: %d pages, %d records; %s requests; %s",
                    spec.name,
                    load.window,
                    pages,
                    fetch.records,
                    client.stats.requests,
                    client.budget.describe_remaining(),
                )
        batch.flush()
        load.reported_total = fetch.reported_total
        if fetch.reconciliation is not None:
            rec = fetch.reconciliation
            load.api_count_after = rec.count_after
            load.changed_during_run = rec.changed_during_run
            load.refetched = rec.refetched
            load.unaccounted = rec.unaccounted
            load.verified_by = rec.verified_by
        load.records_fetched = fetch.records
        load.not_found = fetch.not_found
        summary = replacement.commit(note=lambda summary: load.note(run, summary))
    load.columns = summary.columns
    load.commit_retries = summary.commit_retries
    load.delta_version = summary.table_version
    return load


@dataclass
class RecordBatches:
    """Records gathered into batches of `BATCH_RECORDS`, each mapped and staged when full, so a
    load holds one batch whatever the window's size; the load counts their unparsed rows."""

    spec: EntitySpec
    replacement: PartitionReplacement
    load: WindowLoad
    records: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, records: list[dict[str, Any]]) -> None:
        self.records.extend(records)
        if len(self.records) >= BATCH_RECORDS:
            self.flush()

    def flush(self) -> None:
        if self.records:
            frame = self.spec.mapper.frame(self.records)
            self.load.unparsed_rows += int(frame[UNPARSED_COLUMN].is_not_null().sum())
            self.replacement.add(frame)
            self.records.clear()


@dataclass
class ByIdProgress:
    """Progress of a one-request-per-record phase, which search-page progress never sees."""

    table: str
    window: str
    what: str
    total: int
    log: logging.Logger | Any
    _reported: int = 0

    def start(self) -> None:
        self.log.info(
            "%s %s: fetching %d %s, one request each",
            self.table,
            self.window,
            self.total,
            self.what,
        )

    def advance(self, done: int, client: KustomerClient) -> None:
        if done // PROGRESS_EVERY_RECORDS <= self._reported // PROGRESS_EVERY_RECORDS:
            return
        if done >= self.total:
            return  # the window's own line follows at once
        self._reported = done
        self.log.info(
            "%s %s: %d/%d %s fetched (%d%%); %d requests; %s",
            self.table,
            self.window,
            done,
            self.total,
            self.what,
            100 * done // max(self.total, 1),
            client.stats.requests,
            client.budget.describe_remaining(),
        )
