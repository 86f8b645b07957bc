"""A large window written day by day by our own Parquet writer, committed in ONE transaction.

Why not delta-rs' `write_deltalake` for these: it keeps every partition's file in memory until
the whole write ends, so a window's peak memory grew with the rows it holds (measured on a
30-day window: about 330 MB per million conversations, with any `target_file_size` or row-group
setting). Here memory holds one staged batch or one row group, whatever the window holds:

1. one pass over the staged batches appends each batch's rows to a local spill file of their
   day (an Arrow IPC stream);
2. each day's spill is streamed into data files in the table, row group by row group (a file
   ends at `FILE_ROWS` rows), with its row count as its statistics (see `_statistics`);
3. one `create_write_transaction` removes every file of the window's days and adds the new
   ones, which is what the predicate overwrite does: a run killed before it leaves the table
   as it was (its unreferenced files are harmless and vacuumed), and a lost commit race
   removes the files it wrote before the caller retries.

A day's rows keep their staging order, as the streamed `write_deltalake` kept them.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.ipc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable
from deltalake.fs import DeltaStorageHandler
from deltalake.transaction import AddAction

from kustomer_assets.lake.commits import PARTITION_COLUMN, is_commit_conflict

ROW_GROUP_ROWS = 32_768
"""Rows per row group of a written file: large enough for readers, small enough that one row
group of wide rows (conversations with their custom attributes) stays a few tens of MB."""

FILE_ROWS = 1_000_000
"""A day with more rows than this is split into several files."""

SPILL_IPC = pa.ipc.IpcWriteOptions(compression="lz4")
"""Local, short-lived, read once: a fast codec."""

DATA_COMPRESSION = "snappy"
"""What delta-rs writes by default, so both writers' files look alike."""


def can_write(schema: pa.Schema) -> bool:
    """Whether this writer can take `schema`: a timestamp without a time zone needs a table
    feature (`timestampNtz`) that `create_write_transaction` does not add and `write_deltalake`
    does, so such a window goes to delta-rs (the mappers write UTC timestamps only)."""

    def naive(kind: pa.DataType) -> bool:
        if pa.types.is_timestamp(kind):
            return kind.tz is None
        if pa.types.is_struct(kind):
            return any(naive(f.type) for f in kind)
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            return naive(kind.value_type)
        return False

    return not any(naive(f.type) for f in schema)


def write_days(
    table: DeltaTable,
    batches: Iterable[pa.Table],
    schema: pa.Schema,
    first_day: date,
    end_day: date,
    spill_folder: Path,
    storage_options: dict[str, str] | None = None,
    note: dict[str, str] | None = None,
) -> None:
    """Replace the days `[first_day, end_day)` of `table` with `batches` (each of `schema`,
    with `PARTITION_COLUMN` a date), in one commit. The table must be partitioned by
    `PARTITION_COLUMN`.

    `table` must be the snapshot `schema` was planned against, loaded before the plan: the
    commit is checked for conflicts against it, so a writer that changed the schema meanwhile
    makes this commit fail (to be retried with a new plan) instead of having its columns
    replaced by this one's older schema. delta-rs may not retry the commit itself
    (`max_commit_retries=0`): a transaction without a read predicate conflicts only on files
    both writers removed, so a concurrent writer's new files in these days would survive
    beside ours; any commit in between fails this one instead, for the caller to retry.
    `note` goes into the commit's metadata."""
    spills = _spill_by_day(batches, schema, spill_folder)
    filesystem = pafs.PyFileSystem(DeltaStorageHandler(table.table_uri, storage_options))
    data_schema = pa.schema([f for f in schema if f.name != PARTITION_COLUMN])
    written: list[str] = []
    committing = False
    try:
        actions = [
            action
            for day, spill in sorted(spills.items())
            for action in _write_day(filesystem, day, spill, data_schema, written)
        ]
        committing = True
        table.create_write_transaction(
            actions,
            mode="overwrite",
            schema=_merged(pa.schema(table.schema().to_arrow()), schema),
            partition_by=[PARTITION_COLUMN],
            partition_filters=[
                (PARTITION_COLUMN, ">=", first_day.isoformat()),
                (PARTITION_COLUMN, "<", end_day.isoformat()),
            ],
            commit_properties=CommitProperties(custom_metadata=note, max_commit_retries=0),
        )
    except BaseException as error:
        # Only files no commit references: before the commit, or when it lost a race. An
        # error raised after the log entry landed must not take its files away.
        if not committing or is_commit_conflict(error):
            for path in written:
                with contextlib.suppress(OSError):
                    filesystem.delete_file(path)
        raise


def _merged(table: pa.Schema, written: pa.Schema) -> pa.Schema:
    """The table's schema after this write: its columns (in the written type where this write
    has them) and then the new ones. The schema given to a transaction replaces the table's,
    and `written` holds only the columns the staged batches have, so passing it alone would
    drop the columns other writers added (the merge `write_deltalake` did on its own)."""
    by_name = {f.name: f for f in written}
    kept = [by_name.pop(f.name, f) for f in table]
    return pa.schema([*kept, *by_name.values()])


def _spill_by_day(batches: Iterable[pa.Table], schema: pa.Schema, folder: Path) -> dict[str, Path]:
    """Each day's rows in an Arrow IPC stream of its own: a stream keeps no per-batch metadata
    in memory (a Parquet writer keeps every row group's, which grows with batches x days x
    columns), and lz4 keeps it small on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    writers: dict[str, pa.ipc.RecordBatchStreamWriter] = {}
    sinks: list[pa.NativeFile] = []
    spills: dict[str, Path] = {}
    try:
        for batch in batches:
            days = batch[PARTITION_COLUMN]
            for day in pc.unique(days).to_pylist():
                if day is None:
                    continue  # rows without a day are never written (the caller filters them)
                key = day.isoformat()
                if key not in writers:
                    spills[key] = folder / f"{key}.arrows"
                    sinks.append(pa.OSFile(str(spills[key]), "wb"))
                    writers[key] = pa.ipc.new_stream(sinks[-1], schema, options=SPILL_IPC)
                writers[key].write_table(batch.filter(pc.equal(days, pa.scalar(day, days.type))))
    finally:
        for writer in writers.values():
            writer.close()
        for sink in sinks:
            sink.close()
    return spills


def _row_groups(spill: Path) -> Iterator[pa.Table]:
    """The spill's rows in tables of exactly `ROW_GROUP_ROWS` (the last one shorter): its
    batches are small, a staged batch's share of one day."""
    with pa.OSFile(str(spill), "rb") as source:
        reader = pa.ipc.open_stream(source)
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            pending.append(batch)
            rows += batch.num_rows
            while rows >= ROW_GROUP_ROWS:
                table = pa.Table.from_batches(pending, reader.schema)
                yield table.slice(0, ROW_GROUP_ROWS)
                rest = table.slice(ROW_GROUP_ROWS)
                pending, rows = rest.to_batches(), rest.num_rows
        if rows:
            yield pa.Table.from_batches(pending, reader.schema)


def _write_day(
    filesystem: pafs.FileSystem,
    day: str,
    spill: Path,
    data_schema: pa.Schema,
    written: list[str],
) -> Iterator[AddAction]:
    groups = _row_groups(spill)
    group = next(groups, None)
    while group is not None:
        path = f"{PARTITION_COLUMN}={day}/part-{uuid.uuid4()}-c000.{DATA_COMPRESSION}.parquet"
        written.append(path)
        count = 0
        with (
            filesystem.open_output_stream(path) as out,
            pq.ParquetWriter(out, data_schema, compression=DATA_COMPRESSION) as writer,
        ):
            while group is not None and count < FILE_ROWS:
                table = group.drop_columns([PARTITION_COLUMN]).cast(data_schema)
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                count += group.num_rows
                group = next(groups, None)
        footer = writer.writer.metadata
        size = filesystem.get_file_info(path).size
        yield AddAction(
            path,
            size,
            {PARTITION_COLUMN: day},
            int(time.time() * 1000),
            True,
            json.dumps(_statistics(footer)),
        )
    spill.unlink()


def _statistics(footer: pq.FileMetaData) -> dict[str, Any]:
    """The file's row count, and no column bounds. deltalake's own readers
    (`to_pyarrow_dataset`, and DuckDB or pyarrow over it) take a column without bounds in a
    file's statistics for one whose bounds are null, and skip the file for any filter on it;
    bounds for every column would need delta-rs' rounding of timestamps and truncation of long
    text, and bounds for some are worse than none. Without bounds every reader reads the file
    (partition pruning still applies)."""
    return {"numRecords": footer.num_rows}
