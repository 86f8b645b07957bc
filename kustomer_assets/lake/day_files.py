"""A large window written day by day by our own Parquet writer, committed in ONE transaction.

Why not delta-rs' `write_deltalake` for these: it keeps every partition's file in memory until
the whole write ends, so a window's peak memory grew with the rows it holds (measured on a
30-day window: about 330 MB per million conversations, with any `target_file_size` or row-group
setting). Here memory holds one staged batch or one row group, whatever the window holds:

1. one pass over the staged batches appends each batch's rows to a local spill file of their
   day (an Arrow IPC stream);
2. each day's spill is streamed into data files in the table, row group by row group (a file
   ends at `FILE_ROWS` rows), with per-file statistics taken from the Parquet footer;
3. one `create_write_transaction` removes every file of the window's days and adds the new
   ones, which is what the predicate overwrite does: a run killed before it leaves the table
   as it was (its unreferenced files are harmless and vacuumed), and a lost commit race
   removes the files it wrote before the caller retries.

A day's rows keep their staging order, as the streamed `write_deltalake` kept them.
"""

from __future__ import annotations

import contextlib
import json
import math
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

from kustomer_assets.lake.commits import PARTITION_COLUMN

ROW_GROUP_ROWS = 32_768
"""Rows per row group of a written file: large enough for readers, small enough that one row
group of wide rows (conversations with their custom attributes) stays a few tens of MB."""

FILE_ROWS = 1_000_000
"""A day with more rows than this is split into several files."""

SPILL_IPC = pa.ipc.IpcWriteOptions(compression="lz4")
"""Local, short-lived, read once: a fast codec."""

DATA_COMPRESSION = "snappy"
"""What delta-rs writes by default, so both writers' files look alike."""

_STATS_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer)
"""Columns whose min and max go into a file's statistics. Floats (NaN), timestamps (the
Delta stats format truncates them to milliseconds, which would make a max too small),
booleans and nested columns get a null count only; a reader then just cannot skip the file
by them."""


def write_days(
    table: DeltaTable,
    batches: Iterable[pa.Table],
    schema: pa.Schema,
    first_day: date,
    end_day: date,
    spill_folder: Path,
    storage_options: dict[str, str] | None = None,
    commit_properties: CommitProperties | None = None,
) -> None:
    """Replace the days `[first_day, end_day)` of `table` with `batches` (each of `schema`,
    with `PARTITION_COLUMN` a date), in one commit. The table must be partitioned by
    `PARTITION_COLUMN`.

    `table` must be the snapshot `schema` was planned against, loaded before the plan: the
    commit is checked for conflicts against it, so a writer that changed the schema meanwhile
    makes this commit fail (to be retried with a new plan) instead of having its columns
    replaced by this one's older schema."""
    spills = _spill_by_day(batches, schema, spill_folder)
    filesystem = pafs.PyFileSystem(DeltaStorageHandler(table.table_uri, storage_options))
    data_schema = pa.schema([f for f in schema if f.name != PARTITION_COLUMN])
    written: list[str] = []
    try:
        actions = [
            action
            for day, spill in sorted(spills.items())
            for action in _write_day(filesystem, day, spill, data_schema, written)
        ]
        table.create_write_transaction(
            actions,
            mode="overwrite",
            schema=_merged(pa.schema(table.schema().to_arrow()), schema),
            partition_by=[PARTITION_COLUMN],
            partition_filters=[
                (PARTITION_COLUMN, ">=", first_day.isoformat()),
                (PARTITION_COLUMN, "<", end_day.isoformat()),
            ],
            commit_properties=commit_properties,
        )
    except BaseException:
        for path in written:  # no commit references them: a retry writes its own
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
    """The spill's rows in tables of about `ROW_GROUP_ROWS` (its batches are small: a staged
    batch's share of one day)."""
    with pa.OSFile(str(spill), "rb") as source:
        reader = pa.ipc.open_stream(source)
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            pending.append(batch)
            rows += batch.num_rows
            if rows >= ROW_GROUP_ROWS:
                yield pa.Table.from_batches(pending, reader.schema)
                pending, rows = [], 0
        if pending:
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
            json.dumps(_statistics(footer, data_schema)),
        )
    spill.unlink()


def _statistics(footer: pq.FileMetaData, schema: pa.Schema) -> dict[str, Any]:
    """Delta's per-file statistics from the Parquet footer's row-group statistics."""
    top_level = {
        footer.schema.column(i).path: i
        for i in range(footer.num_columns)
        if "." not in footer.schema.column(i).path
    }
    minimum: dict[str, Any] = {}
    maximum: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for field in schema:
        index = top_level.get(field.name)
        if index is None:
            continue
        groups = range(footer.num_row_groups)
        chunks = [footer.row_group(g).column(index).statistics for g in groups]
        if not chunks or any(c is None or not c.has_null_count for c in chunks):
            continue
        nulls[field.name] = sum(c.null_count for c in chunks)
        if not any(is_type(field.type) for is_type in _STATS_TYPES):
            continue
        bounded = [c for c in chunks if c.has_min_max]
        if len(bounded) != len([c for c in chunks if c.num_values > 0]):
            continue  # a row group with values but no bounds: the file's bounds are unknown
        if bounded:
            minimum[field.name] = _plain(min(c.min for c in bounded))
            maximum[field.name] = _plain(max(c.max for c in bounded))
    return {
        "numRecords": footer.num_rows,
        "minValues": minimum,
        "maxValues": maximum,
        "nullCount": nulls,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
