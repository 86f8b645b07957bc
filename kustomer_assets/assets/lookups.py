"""Ids one asset needs from another asset's table, read with lazy scans of the lake."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import polars as pl

from kustomer_assets.entities import CONVERSATIONS, Reference
from kustomer_assets.lake import DeltaStore
from kustomer_assets.records import PARTITION_COLUMN


def csat_response_ids(store: DeltaStore, start: datetime, end: datetime) -> list[str]:
    """CSAT responses to fetch for `[start, end)`: those of conversations whose satisfaction
    changed in the window. Responses cost one request each, so unchanged ones are not asked
    for again; any version of the conversation counts, so an answer given on D is found even
    when the conversation was touched again later."""
    if not store.exists(CONVERSATIONS.name):
        return []
    changed = pl.coalesce("satisfaction_updated_at", "updated_at")
    ids = (
        store.scan(CONVERSATIONS.name)
        .filter(pl.col("satisfaction_response_id").is_not_null())
        .filter(changed >= start, changed < end)
        .select(pl.col("satisfaction_response_id").unique().sort())
        .collect()
    )
    return ids.to_series().to_list()


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
