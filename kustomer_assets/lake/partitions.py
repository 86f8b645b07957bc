"""Replace a run's daily partitions of a Delta table atomically, from a stream of batches.

Batches are staged as Parquet files on local disk while pages arrive, then committed in ONE
Delta transaction that overwrites exactly the run's `[start, end)` days. Why stage instead of
appending batch by batch: a run killed halfway must leave the previous version of those days
readable and whole, and a rerun must produce the same table, never a mix of old and new rows.
Memory stays bounded by one batch: a record version staged twice is found without keeping the
window's keys in memory (see `dedupe`), and the commit converts and streams the staged files one
by one: small windows are sorted in memory (a rerun writes the same row order) and written by
delta-rs; larger ones are written day by day by `day_files`, because delta-rs keeps every
partition's file in memory until its write ends, which grows with the window.

Rows whose day lies outside the window (a customer referenced by this window's conversations
but last updated long ago) cannot be written by replacing their day without wiping its other
rows; they are inserted into their own day by a merge that adds only missing
(id, updated_at) versions, which keeps reruns idempotent.

Several processes may replace days of one table at once (a sensor run beside a backfill, two
overlapping backfills). Delta's optimistic concurrency then rejects all but one commit; the
others re-read the table and try again after a jittered backoff (`COMMIT_ATTEMPTS`,
`COMMIT_RETRY_SECONDS`). Both steps are idempotent, so a retried step gives the table the
content it would have had had the writers run one after the other.

Before each attempt the staged batches are reconciled with the table's current schema (see
`reconcile`): a type that drifted never fails a write and never loses a value.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import TracebackType

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from kustomer_assets.lake import dedupe
from kustomer_assets.lake.commits import (
    PARTITION_COLUMN,
    ROW_KEY,
    create_table_once,
    is_commit_conflict,
)
from kustomer_assets.lake.day_files import can_write, write_days
from kustomer_assets.lake.reconcile import WritePlan, plan_write
from kustomer_assets.lake.staging import new_staging_folder, sweep_staging

__all__ = [
    "PARTITION_COLUMN",
    "ROW_KEY",
    "PartitionReplacement",
    "WriteSummary",
    "create_table_once",
    "is_commit_conflict",
]

COMMIT_ATTEMPTS = 10
COMMIT_RETRY_SECONDS = 30.0
"""A step that keeps meeting concurrent commits gives up after this many attempts or seconds."""
_BACKOFF_FIRST_SECONDS = 0.1
_BACKOFF_MAX_SECONDS = 5.0

SORT_IN_MEMORY_ROWS = 200_000
"""Windows up to this many rows are sorted before writing (reruns write the same files)."""

STAGING_PARQUET = {"compression": "lz4", "statistics": False}
"""How staged batches are written: local, short-lived files read back whole, once or twice, so
a fast codec beats a small file, and no reader filters on their statistics."""

MERGE_DAY_FILTER_LIMIT = 1_000
"""Up to this many days, the merge names the days it touches, so it reads only those."""


@dataclass
class WriteSummary:
    """What one replacement committed, for materialization metadata and checks."""

    rows: int = 0
    rows_per_day: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: int = 0
    rows_outside_window: int = 0
    """Rows for days outside the window, merged in as missing versions (see module doc)."""
    columns: dict[str, str] = field(default_factory=dict)
    table_version: int | None = None
    schema_changes: list[str] = field(default_factory=list)
    """How the staged types were made to fit each other and the table, one sentence each
    (e.g. `custom_score: Float64 → Int64 (the table's type; every value fits)`)."""
    commit_retries: int = 0
    """Commits retried because another writer committed first."""


@dataclass(frozen=True)
class _Staged(dedupe.StagedKeys):
    kind: str = "batch"
    """`batch` (in the window), `outside` (merged into its own day) or `keys` (rows without a
    day: never written, but their keys still count as seen, as they always have)."""


class PartitionReplacement:
    """Collects batches for the days `[first_day, end_day)` and commits them in one transaction.

    Use as a context manager; `commit()` must be called explicitly, so that leaving the block on
    an exception discards the staged files and leaves the table as it was.
    """

    def __init__(
        self,
        uri: str,
        first_day: date,
        end_day: date,
        base_schema: dict[str, pl.DataType],
        storage_options: dict[str, str] | None = None,
    ) -> None:
        self.uri = uri
        self.first_day = first_day
        self.end_day = end_day
        self.base_schema = base_schema
        self.storage_options = storage_options
        sweep_staging()
        self._staging = new_staging_folder()
        self._files: list[_Staged] = []
        self._outside_files: list[_Staged] = []
        self._unplaced_files: list[_Staged] = []
        self._outside_days: set[date] = set()
        self._staged_count = 0
        self._largest_batch = 0
        self._days: Counter[str] = Counter()
        self._changes: dict[str, list[str]] = {}
        self.summary = WriteSummary()

    @property
    def staging_folder(self) -> Path:
        return self._staging

    def __enter__(self) -> PartitionReplacement:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Delete the staged files (done on leaving the `with` block, success or not)."""
        shutil.rmtree(self._staging, ignore_errors=True)

    def add(self, frame: pl.DataFrame) -> None:
        """Stage one batch, dropping its rows that repeat a version (same id and updated_at),
        so the committed days hold each record version exactly once; copies of versions staged
        by earlier batches are dropped at commit (see `dedupe`)."""
        if frame.is_empty():
            return
        self._largest_batch = max(self._largest_batch, frame.height)
        batch = frame.filter(dedupe.first_copies(frame, ROW_KEY))
        self.summary.duplicates_dropped += frame.height - batch.height
        inside = pl.col(PARTITION_COLUMN).is_between(self.first_day, self.end_day, closed="left")
        in_window = batch.filter(inside.fill_null(False))
        outside = batch.filter(~inside.fill_null(False) & pl.col(PARTITION_COLUMN).is_not_null())
        unplaced = batch.filter(pl.col(PARTITION_COLUMN).is_null())
        if not unplaced.is_empty():
            self._unplaced_files.append(self._stage(unplaced.select(ROW_KEY), "keys"))
        if not outside.is_empty():
            self.summary.rows_outside_window += outside.height
            self._outside_days.update(outside[PARTITION_COLUMN].unique().to_list())
            self._outside_files.append(self._stage(outside, "outside"))
        if in_window.is_empty():
            return
        for day, count in in_window[PARTITION_COLUMN].value_counts().iter_rows():
            self._days[day.isoformat()] += count
        self._files.append(self._stage(in_window, "batch"))

    def _stage(self, frame: pl.DataFrame, kind: str) -> _Staged:
        seq = self._staged_count
        self._staged_count += 1
        path = self._staging / f"{kind}-{seq:06d}.parquet"
        frame.write_parquet(path, **STAGING_PARQUET)
        return _Staged(seq, path, frame.height, dict(frame.schema), kind)

    def _drop_later_copies(self) -> None:
        """Drop the rows whose version an earlier batch staged, one staged file at a time,
        and take them out of the counts `add` made."""
        staged = [*self._files, *self._outside_files, *self._unplaced_files]
        by_seq = {s.seq: s for s in staged}
        bucket_rows = max(self._largest_batch, dedupe.DEDUPE_BUCKET_ROWS)
        workdir = self._staging / "dedupe"
        changed_outside = False
        for seq, rows in dedupe.later_copies(staged, ROW_KEY, workdir, bucket_rows):
            self.summary.duplicates_dropped += len(rows)
            old = by_seq[seq]
            if old.kind == "keys":
                continue
            frame = pl.read_parquet(old.path)
            later = pl.int_range(pl.len()).is_in(rows)
            dropped, kept = frame.filter(later), frame.filter(~later)
            if old.kind == "outside":
                self.summary.rows_outside_window -= dropped.height
                changed_outside = True
            else:
                for day, count in dropped[PARTITION_COLUMN].value_counts().iter_rows():
                    self._days[day.isoformat()] -= count
            files = self._outside_files if old.kind == "outside" else self._files
            index = files.index(old)
            if kept.is_empty():
                del files[index]
                old.path.unlink()
            else:
                kept.write_parquet(old.path, **STAGING_PARQUET)
                files[index] = _Staged(seq, old.path, kept.height, old.schema, old.kind)
        self._days = +self._days  # days left without rows are not reported
        if changed_outside:
            self._outside_days = set()
            for outside in self._outside_files:
                days = pl.read_parquet(outside.path, columns=[PARTITION_COLUMN])
                self._outside_days.update(days[PARTITION_COLUMN].unique().to_list())

    def commit(self, note: Callable[[WriteSummary], dict[str, str]] | None = None) -> WriteSummary:
        """Replace the window's days with what was staged (nothing staged = days emptied).

        `note(summary)` is stored in the window's last Delta commit (the table history), where
        a retried backfill finds which windows an earlier attempt already finished.
        """
        self._drop_later_copies()
        self.summary.rows = sum(self._days.values())
        self.summary.rows_per_day = dict(sorted(self._days.items()))
        merge = bool(self._outside_files)
        # An empty day range (records merged into their own days only) replaces nothing: no
        # empty commit, unless the table must be created first.
        exists = DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options)
        if self.first_day < self.end_day or not merge or not exists:
            self._retrying(lambda: self._replace_window(None if merge else note))
        if merge:
            self._retrying(lambda: self._merge_missing_versions(note))
        self.summary.table_version = DeltaTable(
            self.uri, storage_options=self.storage_options
        ).version()
        return self.summary

    # --- steps ---------------------------------------------------------------------------------

    def _retrying(self, step: Callable[[], None]) -> None:
        deadline = time.monotonic() + COMMIT_RETRY_SECONDS
        attempt = 1
        while True:
            try:
                step()
                return
            except Exception as error:
                remaining = deadline - time.monotonic()
                if not is_commit_conflict(error) or attempt >= COMMIT_ATTEMPTS or remaining <= 0:
                    raise
            self.summary.commit_retries += 1
            delay = min(_BACKOFF_MAX_SECONDS, _BACKOFF_FIRST_SECONDS * 2 ** (attempt - 1))
            time.sleep(min(remaining, random.uniform(delay / 2, delay)))
            attempt += 1

    def _properties(
        self, note: Callable[[WriteSummary], dict[str, str]] | None
    ) -> CommitProperties | None:
        return CommitProperties(custom_metadata=note(self.summary)) if note else None

    def _replace_window(self, note: Callable[[WriteSummary], dict[str, str]] | None) -> None:
        if not DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options):
            fresh = self._plan("replace", self._files)
            schema = fresh.arrow_schema(list(self.base_schema))
            create_table_once(self.uri, schema, [PARTITION_COLUMN], self.storage_options)
        streamed = self._streamed(self._files)
        # The day-file writer's commit is checked against the snapshot loaded before the plan
        # (see `day_files.write_days`); delta-rs' write loads its own.
        snapshot = DeltaTable(self.uri, storage_options=self.storage_options) if streamed else None
        plan = self._plan("replace", self._files)
        written = plan.arrow_schema(list(self.base_schema))
        if snapshot is not None and can_write(written):
            write_days(
                snapshot,
                self._converted(plan, self._files),
                written,
                self.first_day,
                self.end_day,
                self._staging / "days",
                self.storage_options,
                note(self.summary) if note else None,
            )
            return
        predicate = (
            f"{PARTITION_COLUMN} >= '{self.first_day.isoformat()}' "
            f"AND {PARTITION_COLUMN} < '{self.end_day.isoformat()}'"
        )
        write_deltalake(
            self.uri,
            self._data(plan, self._files),
            mode="overwrite",
            predicate=predicate,
            partition_by=[PARTITION_COLUMN],
            schema_mode="merge",
            storage_options=self.storage_options,
            commit_properties=self._properties(note),
        )

    def _merge_missing_versions(
        self, note: Callable[[WriteSummary], dict[str, str]] | None
    ) -> None:
        plan = self._plan("merge", self._outside_files)
        source = self._data(plan, self._outside_files)
        table = DeltaTable(self.uri, storage_options=self.storage_options)
        predicate = f"t.{PARTITION_COLUMN} = s.{PARTITION_COLUMN}"
        if len(self._outside_days) <= MERGE_DAY_FILTER_LIMIT:
            days = ", ".join(f"'{d.isoformat()}'" for d in sorted(self._outside_days))
            predicate = f"t.{PARTITION_COLUMN} IN ({days}) AND {predicate}"
        predicate += "".join(f" AND t.{c} = s.{c}" for c in ROW_KEY)
        (
            table.merge(
                source,
                predicate=predicate,
                source_alias="s",
                target_alias="t",
                merge_schema=True,
                commit_properties=self._properties(note),
            )
            .when_not_matched_insert_all()
            .execute()
        )

    def _table_schema(self) -> dict[str, pl.DataType] | None:
        try:
            table = DeltaTable(self.uri, storage_options=self.storage_options)
        except TableNotFoundError:
            return None
        arrow = pa.schema(table.schema().to_arrow())
        return dict(pl.DataFrame(arrow.empty_table()).schema)

    def _plan(self, step: str, files: Sequence[_Staged]) -> WritePlan:
        """Fit the staged batches to the table as it is now (re-read on every attempt, since
        another writer may have added or typed a column meanwhile)."""
        table = self._table_schema()

        def frames(columns: Sequence[str]) -> Iterator[pl.DataFrame]:
            for staged in files:
                present = [c for c in columns if c in staged.schema]
                if present:
                    yield pl.read_parquet(staged.path, columns=present)

        # A merge's insert_all needs every target column in the source (null where missing).
        every = step == "merge"
        plan = plan_write(self.base_schema, [f.schema for f in files], table, frames, every)
        self._changes[step] = plan.changes
        self.summary.schema_changes = list(
            dict.fromkeys(c for cs in self._changes.values() for c in cs)
        )
        arrow = plan.arrow_schema(list(self.base_schema))
        columns = {f.name: str(f.type) for f in arrow if f.name not in plan.filled}
        self.summary.columns = columns if step == "replace" else {**self.summary.columns, **columns}
        return plan

    @staticmethod
    def _streamed(files: Sequence[_Staged]) -> bool:
        """Too many rows to sort in memory: streamed one staged file at a time."""
        return sum(f.rows for f in files) > SORT_IN_MEMORY_ROWS

    def _converted(self, plan: WritePlan, files: Sequence[_Staged]) -> Iterator[pa.Table]:
        """The staged files in staging order, one at a time, in the written types."""
        order = list(self.base_schema)
        schema = plan.arrow_schema(order)
        for staged in files:
            yield plan.convert(pl.read_parquet(staged.path), order).to_arrow().cast(schema)

    def _data(self, plan: WritePlan, files: Sequence[_Staged]) -> pa.Table | pa.RecordBatchReader:
        order = list(self.base_schema)
        schema = plan.arrow_schema(order)
        if not files:
            return schema.empty_table()
        if self._streamed(files):
            converted = self._converted(plan, files)
            return pa.RecordBatchReader.from_batches(
                schema, (batch for table in converted for batch in table.to_batches())
            )
        # Joined and sorted in polars, converted to Arrow once: `convert` gives every batch
        # the written types. Stable and nulls last, the order Arrow's `sort_by` gave.
        frames = [plan.convert(pl.read_parquet(staged.path), order) for staged in files]
        joined = pl.concat(frames, how="vertical", rechunk=False)
        del frames  # the batches live on in `joined` only until the sort has copied them
        ordered = joined.sort(list(ROW_KEY), nulls_last=True, maintain_order=True)
        del joined
        return ordered.to_arrow().cast(schema)
