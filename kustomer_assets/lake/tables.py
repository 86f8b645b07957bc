"""Small unpartitioned tables rewritten by group: replace every row whose key column holds one
of some values, in one commit.

Why a group and not the whole table: a run that could only look at some groups (one of them
had no input this time) must leave the other groups as they were. Why compare first: a
rewrite that changes nothing would still add a table version, and readers that diff versions
(feedback's incremental build) would then do work for nothing; an identical rewrite is skipped.
"""

from __future__ import annotations

import random
import time
from collections.abc import Collection

import polars as pl
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from kustomer_assets.lake.partitions import create_table_once

COMMIT_ATTEMPTS = 6
COMMIT_RETRY_SECONDS = 30.0
"""A concurrent writer (another run) can win the commit race: re-read and retry within this."""


def _quoted(values: Collection[str]) -> str:
    return ", ".join("'" + str(value).replace("'", "''") + "'" for value in sorted(values))


def _same_rows(left: pl.DataFrame, right: pl.DataFrame) -> bool:
    if set(left.columns) != set(right.columns) or left.height != right.height:
        return False
    columns = sorted(left.columns)
    return left.select(columns).sort(columns).equals(right.select(columns).sort(columns))


def replace_rows_where(
    uri: str,
    rows: pl.DataFrame,
    column: str,
    values: Collection[str],
    storage_options: dict[str, str] | None = None,
) -> int | None:
    """Make the rows whose `column` is in `values` exactly `rows`; other rows stay.

    Creates the table when it does not exist. Returns the new table version, or None when the
    table already held exactly these rows (no commit). Every row of `rows` must have its
    `column` in `values`."""
    outside = rows.filter(~pl.col(column).is_in(list(values)))
    if not outside.is_empty():
        raise ValueError(f"{outside.height} rows have a {column} outside the values replaced")
    if not values:
        return None
    deadline = time.monotonic() + COMMIT_RETRY_SECONDS
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return _replace_once(uri, rows, column, values, storage_options)
        except CommitFailedError:
            remaining = deadline - time.monotonic()
            if attempt == COMMIT_ATTEMPTS or remaining <= 0:
                raise
            delay = min(remaining, 0.2 * 2**attempt)
            time.sleep(random.uniform(delay / 2, delay))
    raise AssertionError("unreachable")


def _replace_once(
    uri: str,
    rows: pl.DataFrame,
    column: str,
    values: Collection[str],
    storage_options: dict[str, str] | None,
) -> int | None:
    # Never create the table by writing rows into it: see `create_table_once`.
    create_table_once(uri, rows.to_arrow().schema, None, storage_options)
    current = (
        pl.scan_delta(uri, storage_options=storage_options)
        .filter(pl.col(column).is_in(list(values)))
        .collect()
    )
    if _same_rows(current, rows):
        return None
    write_deltalake(
        uri,
        rows.to_arrow(),
        mode="overwrite",
        predicate=f"{column} IN ({_quoted(values)})",
        schema_mode="merge",
        storage_options=storage_options,
    )
    return DeltaTable(uri, storage_options=storage_options).version()
