"""Ids one asset needs from another asset's table, read with lazy scans of the lake."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import polars as pl

from kustomer_assets.entities import CONVERSATIONS, Reference
from kustomer_assets.lake import DeltaStore
from kustomer_assets.records import PARTITION_COLUMN

SATISFACTION_TABLE = "satisfaction"


def csat_response_ids(store: DeltaStore, start: datetime, end: datetime) -> list[str]:
    """CSAT responses to fetch for `[start, end)`.

    Responses cost one request each, so unchanged ones are not asked for again: those of
    conversations whose satisfaction changed in the window (any stored version counts), plus
    those that the window's conversations point at but the table lacks -- a conversation rated
    on D1 and touched again on D2 sits in D2's partition, so when D1 was loaded before D2,
    D1's run could not see it.
    """
    if not store.exists(CONVERSATIONS.name):
        return []
    response = pl.col("satisfaction_response_id")
    stamp = pl.coalesce("satisfaction_updated_at", "updated_at")
    changed = (stamp >= start) & (stamp < end)
    in_window = pl.col(PARTITION_COLUMN).is_between(start.date(), end.date(), closed="left")
    candidates = (
        store.scan(CONVERSATIONS.name)
        .filter(response.is_not_null() & (changed | in_window))
        .group_by(response)
        .agg(changed.any().alias("changed"))
        .collect()
    )
    stored: set[str] = set()
    if store.exists(SATISFACTION_TABLE):
        ids = store.scan(SATISFACTION_TABLE).select(pl.col("id").unique()).collect()
        stored = set(ids.to_series().to_list())
    return sorted(
        response_id
        for response_id, was_changed in candidates.iter_rows()
        if was_changed or response_id not in stored
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
