"""Replace a run's daily partitions of a Delta table atomically, from a stream of batches.

Batches are staged as Parquet files on local disk while pages arrive, then committed in ONE
Delta transaction that overwrites exactly the run's `[start, end)` days. Why stage instead of
appending batch by batch: a run killed halfway must leave the previous version of those days
readable and whole, and a rerun must produce the same table, never a mix of old and new rows.
Memory stays bounded by one batch: the commit streams the staged files as Arrow batches.

Rows whose day lies outside the window (a customer referenced by this window's conversations
but last updated long ago) cannot be written by replacing their day without wiping its other
rows; they are inserted into their own day by a merge that adds only missing
(id, updated_at) versions, which keeps reruns idempotent.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import TracebackType

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, write_deltalake

from kustomer_assets.records import PARTITION_COLUMN

ROW_KEY = ("id", "updated_at")


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
        self._staging = Path(tempfile.mkdtemp(prefix="kustomer-stage-"))
        self._files: list[Path] = []
        self._outside_files: list[Path] = []
        self._seen: set[tuple[str, object]] = set()
        self._days: Counter[str] = Counter()
        self.summary = WriteSummary()

    def __enter__(self) -> PartitionReplacement:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)

    def add(self, frame: pl.DataFrame) -> None:
        """Stage one batch, dropping rows already staged (same id and updated_at), so the
        committed days hold each record version exactly once."""
        if frame.is_empty():
            return
        keys = list(zip(*(frame[c].to_list() for c in ROW_KEY), strict=True))
        fresh = []
        for key in keys:
            fresh.append(key not in self._seen)
            self._seen.add(key)
        batch = frame.filter(pl.Series(fresh, dtype=pl.Boolean))
        self.summary.duplicates_dropped += frame.height - batch.height
        inside = pl.col(PARTITION_COLUMN).is_between(self.first_day, self.end_day, closed="left")
        in_window = batch.filter(inside.fill_null(False))
        outside = batch.filter(~inside.fill_null(False) & pl.col(PARTITION_COLUMN).is_not_null())
        if not outside.is_empty():
            self.summary.rows_outside_window += outside.height
            self._outside_files.append(self._stage(outside, "outside"))
        if in_window.is_empty():
            return
        for day, count in in_window[PARTITION_COLUMN].value_counts().iter_rows():
            self._days[day.isoformat()] += count
        self._files.append(self._stage(in_window, "batch"))

    def _stage(self, frame: pl.DataFrame, kind: str) -> Path:
        path = self._staging / f"{kind}-{len(self._files) + len(self._outside_files):06d}.parquet"
        frame.write_parquet(path)
        return path

    def commit(self, note: Callable[[WriteSummary], dict[str, str]] | None = None) -> WriteSummary:
        """Replace the window's days with what was staged (nothing staged = days emptied).

        `note(summary)` is stored in the window's last Delta commit (the table history), where
        a retried backfill finds which windows an earlier attempt already finished.
        """
        schema = self._unified_schema()
        self.summary.rows = sum(self._days.values())
        self.summary.rows_per_day = dict(sorted(self._days.items()))
        self.summary.columns = {f.name: str(f.type) for f in schema}
        properties = CommitProperties(custom_metadata=note(self.summary)) if note else None
        predicate = (
            f"{PARTITION_COLUMN} >= '{self.first_day.isoformat()}' "
            f"AND {PARTITION_COLUMN} < '{self.end_day.isoformat()}'"
        )
        sort_keys = [(c, "ascending") for c in ROW_KEY]
        if self._files:
            dataset = pads.dataset([str(p) for p in self._files], schema=schema, format="parquet")
            # Sort within the staged data so a rerun writes byte-for-byte the same row order.
            table_or_reader: pa.Table | pa.RecordBatchReader
            if self.summary.rows <= 200_000:
                table_or_reader = dataset.to_table().sort_by(sort_keys)
            else:
                table_or_reader = dataset.scanner().to_reader()
        else:
            table_or_reader = schema.empty_table()
        write_deltalake(
            self.uri,
            table_or_reader,
            mode="overwrite",
            predicate=predicate,
            partition_by=[PARTITION_COLUMN],
            schema_mode="merge",
            storage_options=self.storage_options,
            commit_properties=None if self._outside_files else properties,
        )
        if self._outside_files:
            self._merge_missing_versions(schema, properties)
        self.summary.table_version = DeltaTable(
            self.uri, storage_options=self.storage_options
        ).version()
        return self.summary

    def _merge_missing_versions(
        self, schema: pa.Schema, properties: CommitProperties | None
    ) -> None:
        files = [str(p) for p in self._outside_files]
        source = pads.dataset(files, schema=schema, format="parquet").to_table()
        table = DeltaTable(self.uri, storage_options=self.storage_options)
        (
            table.merge(
                source,
                predicate="t.id = s.id AND t.updated_at = s.updated_at",
                source_alias="s",
                target_alias="t",
                merge_schema=True,
                commit_properties=properties,
            )
            .when_not_matched_insert_all()
            .execute()
        )

    def _unified_schema(self) -> pa.Schema:
        """Base columns first, then every custom column any batch met, in a stable order."""
        base = pl.DataFrame(schema=self.base_schema).to_arrow().schema
        staged = [*self._files, *self._outside_files]
        schemas = [base, *(pads.dataset(str(p), format="parquet").schema for p in staged)]
        unified = pa.unify_schemas(schemas, promote_options="permissive")
        extra = sorted(n for n in unified.names if n not in base.names)
        return pa.schema([unified.field(n) for n in [*base.names, *extra]])
