"""Record versions staged twice in one window, found in memory bounded by one batch.

A window is staged batch by batch, and one version (its row key) can come back in a later
batch: a record updated while pages were read shows on two pages, a referenced customer is in
the search too. The table must hold each version once, the first copy in staging order. A set
of every key seen would grow with the window (millions of keys for a long backfill window),
so instead:

1. each batch is de-duplicated on its own as it is staged (`first_copies`);
2. at commit, `later_copies` finds copies across batches. A window of at most `bucket_rows`
   staged rows is compared in memory (its keys only). A larger one has its keys partitioned on
   disk by a hash of the key into buckets of about `bucket_rows` rows: every copy of a key
   lands in the same bucket, so one bucket at a time finds every later copy. The rows to drop
   are written to disk too, by staged file, and handed back one staged file at a time.

No step holds more than one staged file's keys, one bucket, or one file's drops in memory,
whatever the window holds. Keys are compared by value; a key column whose type differs
between batches (an external frame) is compared as text.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from kustomer_assets.lake.reconcile import as_text

DEDUPE_BUCKET_ROWS = 100_000
"""Keys compared at once at least (a few MB); a window's largest batch raises it."""

_SEQ, _ROW, _BUCKET = "_staged_seq", "_staged_row", "_key_bucket"
_HASH_SEED = 20_261_120


@dataclass(frozen=True)
class StagedKeys:
    """A staged file as the de-duplication sees it: where, in which order, its key types."""

    seq: int
    """Staging order: the first copy of a key is the one in the lowest `seq`."""
    path: Path
    rows: int
    schema: Mapping[str, pl.DataType]


def first_copies(frame: pl.DataFrame, key: Sequence[str]) -> pl.Series:
    """True on each row whose key no earlier row of `frame` holds (nulls compare equal)."""
    return frame.select(pl.struct(list(key)).is_first_distinct()).to_series()


def later_copies(
    files: Sequence[StagedKeys], key: Sequence[str], workdir: Path, bucket_rows: int
) -> Iterator[tuple[int, list[int]]]:
    """`(seq, row numbers)` of the rows of each staged file whose key an earlier file holds,
    one file at a time in staging order. No file may hold a key twice (see `first_copies`)."""
    ordered = sorted(files, key=lambda f: f.seq)
    total = sum(f.rows for f in ordered)
    if len(ordered) < 2 or total == 0:
        return
    types = _key_types(ordered, key)
    if total <= bucket_rows:
        keys = pl.concat([_keys(f, key, types) for f in ordered])
        drops = _later(keys, len(key))
        for (seq,), rows in drops.group_by(_SEQ, maintain_order=True):
            yield int(seq), sorted(rows[_ROW].to_list())
        return
    try:
        yield from _bucketed(ordered, key, types, workdir, math.ceil(total / bucket_rows))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _key_types(files: Sequence[StagedKeys], key: Sequence[str]) -> dict[str, pl.DataType]:
    """Each key column's type where every file agrees on it, else text."""
    types: dict[str, pl.DataType] = {}
    for column in key:
        seen = {f.schema[column] for f in files}
        types[column] = seen.pop() if len(seen) == 1 else pl.String
    return types


def _keys(staged: StagedKeys, key: Sequence[str], types: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """The file's key columns (as `_k0`, `_k1` ...), its `seq` and each row's number."""
    frame = pl.read_parquet(staged.path, columns=list(key))
    columns = []
    for i, column in enumerate(key):
        own = staged.schema[column]
        expr = pl.col(column) if own == types[column] else as_text(pl.col(column), own)
        columns.append(expr.alias(f"_k{i}"))
    return frame.select(
        *columns,
        pl.lit(staged.seq, dtype=pl.Int64).alias(_SEQ),
        pl.int_range(pl.len(), dtype=pl.Int64).alias(_ROW),
    )


def _later(keys: pl.DataFrame, width: int) -> pl.DataFrame:
    """`(seq, row)` of every copy after the first, in staging order."""
    names = [f"_k{i}" for i in range(width)]
    first = pl.struct(names).is_first_distinct()
    return keys.sort(_SEQ, _ROW).filter(~first).select(_SEQ, _ROW)


def _read_bucket(folder: Path) -> pl.DataFrame:
    """One bucket's keys (every copy of each of its keys), from the files the writer made."""
    return pl.read_parquet(sorted(folder.glob("*.parquet")))


def _bucketed(
    files: Sequence[StagedKeys],
    key: Sequence[str],
    types: Mapping[str, pl.DataType],
    workdir: Path,
    buckets: int,
) -> Iterator[tuple[int, list[int]]]:
    names = [f"_k{i}" for i in range(len(key))]
    schema = {**{n: types[c] for n, c in zip(names, key, strict=True)}}
    schema.update({_SEQ: pl.Int64, _ROW: pl.Int64, _BUCKET: pl.Int64})
    arrow = pl.DataFrame(schema=schema).to_arrow().schema
    bucket = (pl.struct(names).hash(seed=_HASH_SEED) % buckets).cast(pl.Int64).alias(_BUCKET)

    def keyed() -> Iterator[pa.RecordBatch]:
        for staged in files:  # one staged file's keys at a time
            table = _keys(staged, key, types).with_columns(bucket).to_arrow().cast(arrow)
            yield from table.to_batches()

    by_bucket = workdir / "keys"
    _write(pa.RecordBatchReader.from_batches(arrow, keyed()), by_bucket, _BUCKET, buckets)

    drop_schema = pl.DataFrame(schema={_SEQ: pl.Int64, _ROW: pl.Int64}).to_arrow().schema

    def dropped() -> Iterator[pa.RecordBatch]:
        if not by_bucket.exists():
            return
        for folder in sorted(by_bucket.iterdir()):  # one bucket at a time
            later = _later(_read_bucket(folder), len(key))
            if not later.is_empty():
                yield from later.to_arrow().cast(drop_schema).to_batches()

    by_file = workdir / "drops"
    _write(pa.RecordBatchReader.from_batches(drop_schema, dropped()), by_file, _SEQ, len(files))
    for staged in files:
        folder = by_file / f"{_SEQ}={staged.seq}"
        if folder.exists():
            yield staged.seq, sorted(_read_bucket(folder)[_ROW].to_list())


def _write(reader: pa.RecordBatchReader, folder: Path, column: str, partitions: int) -> None:
    """Stream `reader` to Parquet files under `folder`, one sub-folder per value of `column`."""
    ds.write_dataset(
        reader,
        str(folder),
        format="parquet",
        partitioning=[column],
        partitioning_flavor="hive",
        max_partitions=partitions + 1,
        existing_data_behavior="overwrite_or_ignore",
    )
