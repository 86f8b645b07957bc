"""Candidates of removal for one entity, checked for plausibility, then confirmed: the steps
of `reconcile_entity` in order (package docstring: why and how)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from kustomer_assets.entities import EntitySpec
from kustomer_assets.kustomer import KustomerClient
from kustomer_assets.lake import DeltaStore
from kustomer_assets.records import TIMESTAMP
from kustomer_assets.removals.confirmation import (
    look_up,
    resolve_merge_chains,
    survivors_by_referrers,
)
from kustomer_assets.removals.listing import (
    Listing,
    _floor_ms,
    _utc,
    list_ids,
    relisting_spans,
)
from kustomer_assets.removals.table import (
    REMOVED_RECORDS_SCHEMA,
    empty_rows,
)

DEFAULT_MAX_CANDIDATE_SHARE = 0.2
CANDIDATE_FLOOR = 20
"""The share bound applies above this many new candidates, so a small table's first few
deletions are not mistaken for an outage."""


class ImplausibleRemovalsError(Exception):
    """Too many records seem gone at once to be deletions; nothing was marked."""


@dataclass
class EntityReconciliation:
    """What one entity's reconciliation found, and what it cost."""

    entity: str
    rows: pl.DataFrame = field(default_factory=empty_rows)
    span_start: datetime | None = None
    span_end: datetime | None = None
    ids_in_span: int = 0
    beyond_horizon: int = 0
    listing: Listing = field(default_factory=Listing)
    candidates: int = 0
    """New candidates: missing from the listing and not marked by an earlier run."""
    still_marked: int = 0
    looked_up: int = 0
    referrers_looked_up: int = 0
    """GETs of a referrer (a customer's latest conversation) after the record answered 404."""
    relisting: Listing | None = None
    still_there: int = 0
    requests: int = 0
    """Requests the client really sent for this entity (retries included)."""

    @property
    def removed(self) -> int:
        return self.rows.filter(pl.col("merged_into_id").is_null()).height

    @property
    def merged(self) -> int:
        return self.rows.filter(pl.col("merged_into_id").is_not_null()).height

    def expected_requests(self, page_size: int) -> int:
        """The documented cost: the listing, then one GET per new candidate or the
        re-listing (each window one count plus one page per `page_size` ids it counts)."""
        relisted = self.relisting.expected_requests(page_size) if self.relisting else 0
        lookups = self.looked_up + self.referrers_looked_up
        return self.listing.expected_requests(page_size) + lookups + relisted

    def summary(self) -> dict[str, Any]:
        return {
            "span_start": self.span_start.isoformat() if self.span_start else None,
            "span_end": self.span_end.isoformat() if self.span_end else None,
            "ids_in_span": self.ids_in_span,
            "beyond_search_horizon": self.beyond_horizon,
            "listed": len(self.listing.ids),
            "listing": self.listing.summary(),
            "candidates": self.candidates,
            "still_marked_from_earlier_runs": self.still_marked,
            "looked_up_by_id": self.looked_up,
            "referrers_looked_up": self.referrers_looked_up,
            "relisting": self.relisting.summary() if self.relisting else None,
            "still_there": self.still_there,
            "removed": self.removed,
            "merged": self.merged,
            "requests": self.requests,
        }


def latest_versions(store: DeltaStore, table: str) -> pl.DataFrame:
    """(id, last_updated_at): the `updated_at` of our latest version of each record."""
    return (
        store.scan(table)
        .group_by("id")
        .agg(pl.col("updated_at").max().alias("last_updated_at"))
        .drop_nulls()
        .collect()
    )


def _check_plausible(
    spec: EntitySpec, new: int, total: int, since: datetime, max_share: float
) -> None:
    if new > max(CANDIDATE_FLOOR, max_share * total):
        raise ImplausibleRemovalsError(
            f"{spec.name}: Kustomer no longer lists {new:,} of the {total:,} records our table "
            f"holds since {since:%Y-%m-%d} ({new / max(total, 1):.0%}, above the "
            f"{max_share:.0%} bound), which looks like a key for another org, a search outage "
            "or a table from elsewhere rather than deletions, so nothing was marked; if they "
            "really were deleted, rerun with a higher max_candidate_share."
        )


def reconcile_entity(
    client: KustomerClient,
    store: DeltaStore,
    spec: EntitySpec,
    earlier: pl.DataFrame,
    *,
    searchable_since: datetime,
    max_candidate_share: float = DEFAULT_MAX_CANDIDATE_SHARE,
) -> EntityReconciliation:
    """The rows of `removed_records` for one entity (see the module doc).

    `earlier` holds the rows an earlier run wrote for this entity, so that the first time a
    record was noticed is kept and records already marked are not asked about again."""
    requests_before = client.stats.requests
    result = EntityReconciliation(spec.name)
    latest = latest_versions(store, spec.name)
    if latest.is_empty():
        return result
    now = _floor_ms(datetime.now(UTC))
    first = _utc(latest["last_updated_at"].min())  # type: ignore[arg-type]
    start = _floor_ms(max(first, _utc(searchable_since)))
    in_span = latest.filter(
        (pl.col("last_updated_at") >= start) & (pl.col("last_updated_at") < now)
    )
    result.span_start, result.span_end = start, now
    result.ids_in_span = in_span.height
    result.beyond_horizon = latest.filter(pl.col("last_updated_at") < start).height
    result.listing = list_ids(client, spec, [(start, now)], in_span["last_updated_at"])

    missing = in_span.filter(~pl.col("id").is_in(list(result.listing.ids)))
    marked = earlier.select("id", "removed_from_kustomer_at", "merged_into_id")
    kept = missing.join(marked, on="id", how="inner")
    new = missing.join(marked, on="id", how="anti")
    result.candidates, result.still_marked = new.height, kept.height
    _check_plausible(spec, new.height, in_span.height, start, max_candidate_share)

    if new.is_empty():
        confirmed = new.with_columns(pl.lit(None, pl.Utf8).alias("merged_into_id"))
    elif spec.by_id_path is not None:
        answers = look_up(client, spec, new["id"].to_list())
        result.looked_up = answers.height
        result.still_there = answers.filter(pl.col("still_there")).height
        gone = answers.filter(~pl.col("still_there")).drop("still_there")
        unmerged = gone.filter(pl.col("merged_into_id").is_null())["id"].to_list()
        survivors, result.referrers_looked_up = survivors_by_referrers(
            client, store, spec, unmerged
        )
        gone = (
            gone.join(survivors.rename({"merged_into_id": "_survivor"}), on="id", how="left")
            .with_columns(pl.coalesce("merged_into_id", "_survivor").alias("merged_into_id"))
            .drop("_survivor")
        )
        confirmed = new.join(gone, on="id", how="inner")
    else:
        spans = relisting_spans(new, now, start, _floor_ms(datetime.now(UTC)))
        result.relisting = list_ids(client, spec, spans)
        confirmed = new.filter(~pl.col("id").is_in(list(result.relisting.ids))).with_columns(
            pl.lit(None, pl.Utf8).alias("merged_into_id")
        )
        result.still_there = new.height - confirmed.height

    rows = pl.concat(
        [
            kept,
            confirmed.with_columns(pl.lit(now).cast(TIMESTAMP).alias("removed_from_kustomer_at")),
        ],
        how="diagonal_relaxed",
    ).with_columns(pl.lit(spec.name).alias("entity"))
    result.rows = resolve_merge_chains(
        rows.select([pl.col(n).cast(t) for n, t in REMOVED_RECORDS_SCHEMA.items()])
    ).sort("id")
    result.requests = client.stats.requests - requests_before
    return result
