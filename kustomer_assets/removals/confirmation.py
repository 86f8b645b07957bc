"""Confirming candidates by id: what the by-id endpoint answers, merges a 404 hides, and chains.

Step 3 of `removals` for entities with a by-id endpoint (404 removed, an answer under another id
merged into it), and the merge rules: after a 404, the latest record of ours that points at the
id (a customer's latest conversation) tells whether Kustomer now files it under a survivor.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from kustomer_assets.entities import ENTITIES_BY_NAME, EntitySpec
from kustomer_assets.kustomer import KustomerClient, KustomerNotFoundError
from kustomer_assets.lake import DeltaStore

_MAX_MERGE_HOPS = 8


def look_up(client: KustomerClient, spec: EntitySpec, ids: Sequence[str]) -> pl.DataFrame:
    """What the by-id endpoint says of each id: (id, still_there, merged_into_id)."""
    if spec.by_id_path is None:
        raise TypeError(f"{spec.name} has no by-id endpoint")
    answers: list[tuple[str, bool, str | None]] = []
    for record_id in ids:
        try:
            data = client.get_resource(spec.by_id_path.format(id=record_id), role=spec.role)
        except KustomerNotFoundError:
            answers.append((record_id, False, None))
            continue
        answered = str(data.get("id") or record_id) if isinstance(data, dict) else record_id
        same = answered == record_id
        answers.append((record_id, same, None if same else answered))
    return pl.DataFrame(
        answers,
        schema={"id": pl.Utf8, "still_there": pl.Boolean, "merged_into_id": pl.Utf8},
        orient="row",
    )


def survivors_by_referrers(
    client: KustomerClient, store: DeltaStore, spec: EntitySpec, removed_ids: Sequence[str]
) -> tuple[pl.DataFrame, int]:
    """(id, merged_into_id) for records that answered 404 but whose latest referrer of ours
    (the latest conversation of a customer) Kustomer now files under another record: a merge
    the 404 for the old id did not tell. Also returns the GETs it spent (one per record that
    has a referrer)."""
    out = pl.DataFrame(schema={"id": pl.Utf8, "merged_into_id": pl.Utf8})
    ref = spec.reference
    referring = ENTITIES_BY_NAME.get(ref.table) if ref else None
    if ref is None or referring is None or referring.by_id_path is None or not removed_ids:
        return out, 0
    if not store.exists(ref.table):
        return out, 0
    latest_referrers = (
        store.scan(ref.table)
        .filter(pl.col(ref.column).is_in(list(removed_ids)))
        .sort("updated_at", "id")
        .group_by(ref.column, maintain_order=True)
        .last()
        .select(pl.col(ref.column).alias("removed"), pl.col("id").alias("referrer"))
        .collect()
    )
    column = next(c for c in referring.columns if c.name == ref.column)
    found: list[tuple[str, str | None]] = []
    for removed, referrer in latest_referrers.iter_rows():
        try:
            record = client.get_resource(
                referring.by_id_path.format(id=referrer), role=referring.role
            )
        except KustomerNotFoundError:
            found.append((removed, None))
            continue
        now_named = column.extract(record) if isinstance(record, dict) else None
        found.append((removed, str(now_named) if now_named and now_named != removed else None))
    frame = pl.DataFrame(found, schema=out.schema, orient="row").drop_nulls()
    return frame, latest_referrers.height


def resolve_merge_chains(rows: pl.DataFrame) -> pl.DataFrame:
    """A merged into B, B merged into C: A is merged into C (bounded, so a cycle stops)."""
    for _ in range(_MAX_MERGE_HOPS):
        hops = rows.filter(pl.col("merged_into_id").is_not_null()).select(
            pl.col("id").alias("merged_into_id"), pl.col("merged_into_id").alias("_next")
        )
        stepped = rows.join(hops, on="merged_into_id", how="left").with_columns(
            pl.when(pl.col("_next").is_not_null() & (pl.col("_next") != pl.col("id")))
            .then(pl.col("_next"))
            .otherwise(pl.col("merged_into_id"))
            .alias("merged_into_id")
        )
        stepped = stepped.drop("_next")
        if stepped.equals(rows):
            break
        rows = stepped
    return rows
