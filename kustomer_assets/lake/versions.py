"""Reading a table's history: its version, the notes its commits carry, the files of a version.

Readers that compare versions (feedback's incremental build stores the input versions it was
built from in its own commit notes, then diffs each input's files between two versions) ask
for these here, so that only `lake/` opens Delta tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import polars as pl
from deltalake import DeltaTable


class VersionGone(Exception):
    """A table version that can no longer be read (its log entry was cleaned up)."""


def table_version(uri: str, storage_options: dict[str, str] | None = None) -> int:
    return DeltaTable(uri, storage_options=storage_options).version()


def history(uri: str, limit: int, storage_options: dict[str, str] | None = None) -> list[dict]:
    """The table's latest `limit` commits, newest first, each with its commit note's keys."""
    return DeltaTable(uri, storage_options=storage_options).history(limit)


def files_at(uri: str, version: int, storage_options: dict[str, str] | None = None) -> set[str]:
    """The data files (URIs) making up `version`; `VersionGone` when it cannot be loaded."""
    try:
        table = DeltaTable(uri, version=version, storage_options=storage_options)
    except Exception as error:  # the log entry was cleaned up (or never existed)
        raise VersionGone(f"{uri}: version {version} cannot be read ({error})") from error
    return set(table.file_uris())


def read_files(files: Iterable[str], columns: list[str]) -> pl.DataFrame | None:
    """`columns` of every row of `files` (data files of some version), or None when a local
    file is gone (vacuumed): then what that version held can no longer be told.

    A column that appears mid-history is one some files lack: it reads as null there, and
    the files' other columns need not agree, since only `columns` are read."""
    files = list(files)
    if not files:
        return pl.DataFrame()
    local = [f.removeprefix("file://") for f in files]
    if any("://" not in f and not os.path.exists(f) for f in local):
        return None
    return (
        pl.scan_parquet(
            files, hive_partitioning=False, extra_columns="ignore", missing_columns="insert"
        )
        .select(columns)
        .collect()
    )
