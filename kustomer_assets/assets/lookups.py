"""Ids one asset needs from another asset's table, read with lazy scans of the lake."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import polars as pl

from kustomer_assets.entities import ByIdSource, Reference
from kustomer_assets.lake import DeltaStore
from kustomer_assets.records import PARTITION_COLUMN


def ids_to_fetch(
    store: DeltaStore, table: str, source: ByIdSource, start: datetime, end: datetime
) -> list[str]:
    """Ids of `table`'s records (held on `source.ids_from` rows) to fetch for `[start, end)`.

    Each record costs one request, so unchanged ones are not asked for again: those whose
    `changed_at_column` (CSAT: a conversation's `satisfaction_updated_at`) fell in the window
    on any stored version, plus those that the window's rows point at but the table lacks -- a
    conversation rated on D1 and touched again on D2 sits in D2's partition, so when D1 was
    loaded before D2, D1's run could not see it.
    """
    if not store.exists(source.ids_from):
        return []
    record_id = pl.col(source.id_column)
    stamp = pl.coalesce(source.changed_at_column, "updated_at")
    changed = (stamp >= start) & (stamp < end)
    in_window = pl.col(PARTITION_COLUMN).is_between(start.date(), end.date(), closed="left")
    candidates = (
        store.scan(source.ids_from)
        .filter(record_id.is_not_null() & (changed | in_window))
        .group_by(record_id)
        .agg(changed.any().alias("changed"))
        .collect()
    )
    stored: set[str] = set()
    if store.exists(table):
        ids = store.scan(table).select(pl.col("id").unique()).collect()
        stored = set(ids.to_series().to_list())
    return sorted(
        candidate
        for candidate, was_changed in candidates.iter_rows()
        if was_changed or candidate not in stored
    )


def missing_references(
    store: DeltaStore,
    table: str,
    reference: Reference,
    start: datetime,
    end: datetime,
    fetched: Collection[str],
) -> list[str]:
    """Ids the window's rows of `reference.table` point at that `table` does not hold yet."""
    if not store.exists(reference.table):
        return []
    pointed = (
        store.scan(reference.table)
        .filter(pl.col(PARTITION_COLUMN).is_between(start.date(), end.date(), closed="left"))
        .select(pl.col(reference.column).drop_nulls().unique())
        .collect()
        .to_series()
    )
    known = (
        store.scan(table).select(pl.col("id").unique()).collect().to_series()
        if store.exists(table)
        else pl.Series([], dtype=pl.Utf8)
    )
    missing = set(pointed.to_list()) - set(known.to_list()) - set(fetched)
    return sorted(missing)
