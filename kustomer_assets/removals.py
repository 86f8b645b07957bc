"""Records Kustomer no longer returns (hard-deleted records, merged customers), found by ids.

Why by ids: a purge (GDPR erasure, a spam clean-up) or a customer merge makes a record vanish
from search and lists. An incremental sync reads what changed, and nothing it reads says that a
record is gone; counts cannot tell either, since new records fill the gap (API notes, "A live
org"). So, per searched entity whose table exists:

1. **Listing.** The ids Kustomer holds for `[our earliest updated_at, now)`, clipped to
   search's two-year horizon, read as `idsOnly` search pages (ids only, 500 per request). The
   span is cut into windows of at most `WINDOW_MAX_RECORDS`, each sized by one count request
   (cut where our own records say, split again where Kustomer counts more), so that no listing
   meets the deep-paging wall (100 pages or 10,000 results: the docs do not say which).
2. **Candidates.** Ids whose latest version of ours lies in the span and that the listing
   lacks. A record an earlier run marked and that is still missing stays marked without being
   asked again. New candidates above `max_candidate_share` of the table (and above
   `CANDIDATE_FLOOR`) mean something else is wrong -- a key for another org, a search outage
   -- and the run fails in one sentence instead of marking half the table.
3. **Confirmation.** A record touched while the listing pages moves past the listed span; and
   under page-number paging that move shifts the record at the next page boundary out of
   sight, untouched. Entities with a by-id endpoint (`EntitySpec.by_id_path`) are asked about
   each new candidate: 404 removed, an answer under another id merged into it, the same id
   still there. The others are listed again over `[start of the listing - 1 minute, now +
   1 minute)`, where touched records went, and over the hour of each remaining candidate's last
   update, where a shifted-out record still sits (a window that small is one page, so nothing
   shifts); only ids absent from every listing are marked.

Merges: Kustomer answers an old customer id with the survivor's record, or (on another reading
of the API) with 404. A merge re-points the customer's conversations to the survivor, so after a
404 one GET of the latest conversation our table has for that customer (the record that points
at it, `EntitySpec.reference`) tells: if Kustomer now files it under another customer, that is
the survivor; otherwise the customer was deleted. Chains (A into B, B into C) resolve to the end.

Cost (requests), per entity and run: one count per listed window plus one `idsOnly` page per
500 ids it counts (no page when it counts 0); then, only when there are new candidates, one GET
each (conversations, customers; plus one per customer answering 404 that has a conversation of
ours) or the re-listing windows above, priced the same way.
`EntityReconciliation.expected_requests` states it; the README gives examples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import polars as pl

from kustomer_assets.entities import ENTITIES_BY_NAME, EntitySpec, SearchSource
from kustomer_assets.kustomer import KustomerClient, KustomerNotFoundError
from kustomer_assets.lake import DeltaStore
from kustomer_assets.records import TIMESTAMP

REMOVED_RECORDS = "removed_records"

REMOVED_RECORDS_SCHEMA: dict[str, pl.DataType] = {
    "entity": pl.Utf8,
    "id": pl.Utf8,
    "removed_from_kustomer_at": TIMESTAMP,
    "merged_into_id": pl.Utf8,
    "last_updated_at": TIMESTAMP,
}

COLUMN_DESCRIPTIONS = {
    "entity": "Table the record is in (conversations, customers, messages, notes, kobjects).",
    "id": "Kustomer id of the record Kustomer no longer returns.",
    "removed_from_kustomer_at": "When a reconciliation first noticed it was gone (UTC).",
    "merged_into_id": "The record Kustomer merged it into (customers); null when deleted.",
    "last_updated_at": "updated_at of the latest version our table holds (UTC).",
}

WINDOW_MAX_RECORDS = 10_000
"""Most records one listing window may hold: 20 pages of 500, below either reading of the
deep-paging wall (page 100, or 10,000 results)."""
WINDOW_TARGET_RECORDS = 8_000
"""What a window is cut for, leaving room for records Kustomer holds and we do not."""
TOUCHED_MARGIN = timedelta(minutes=1)
"""The re-listing starts this long before the first listing did and ends this long after now:
Kustomer's clock, which stamps `updatedAt`, and ours differ a little."""
RELISTING_SPAN = timedelta(hours=1)
"""Re-listing window around a candidate's last update (candidates of one hour share one)."""
DEFAULT_MAX_CANDIDATE_SHARE = 0.2
CANDIDATE_FLOOR = 20
"""The share bound applies above this many new candidates, so a small table's first few
deletions are not mistaken for an outage."""
_MIN_SPLIT = timedelta(minutes=1)
_MAX_MERGE_HOPS = 8


class ImplausibleRemovalsError(Exception):
    """Too many records seem gone at once to be deletions; nothing was marked."""


def empty_rows() -> pl.DataFrame:
    return pl.DataFrame(schema=REMOVED_RECORDS_SCHEMA)


def _floor_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# ----------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class ListedWindow:
    start: datetime
    end: datetime
    counted: int | None
    """What the window's count request reported (None: the server reports no total)."""
    listed: int


@dataclass
class Listing:
    """Ids Kustomer listed over some windows, and what that cost in count requests."""

    ids: set[str] = field(default_factory=set)
    windows: list[ListedWindow] = field(default_factory=list)
    counts: int = 0
    """Count requests, including those of windows that were split instead of listed."""

    def expected_requests(self, page_size: int) -> int:
        """The cost formula: one count per window, one page per `page_size` ids counted."""
        pages = sum(
            math.ceil((w.listed if w.counted is None else w.counted) / page_size)
            for w in self.windows
        )
        return self.counts + pages

    def summary(self) -> dict[str, Any]:
        return {
            "windows": [
                {"start": w.start.isoformat(), "end": w.end.isoformat(), "counted": w.counted}
                for w in self.windows
            ],
            "count_requests": self.counts,
            "listed": len(self.ids),
        }


def _cut_by(start: datetime, end: datetime, ours: pl.Series) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at quantiles of our own `updated_at`s, `WINDOW_TARGET_RECORDS` each."""
    parts = math.ceil(ours.len() / WINDOW_TARGET_RECORDS)
    if parts <= 1:
        return [(start, end)]
    positions = [ours.len() * k // parts for k in range(1, parts)]
    cuts = sorted({_floor_ms(_utc(t)) for t in ours.sort().gather(positions).to_list()})
    edges = [start, *(c for c in cuts if start < c < end), end]
    return list(pairwise(edges))


def _equal_parts(start: datetime, end: datetime, parts: int) -> list[tuple[datetime, datetime]]:
    step = (end - start) / parts
    cuts = sorted({_floor_ms(start + step * k) for k in range(1, parts)})
    edges = [start, *(c for c in cuts if start < c < end), end]
    return list(pairwise(edges))


def list_ids(
    client: KustomerClient,
    spec: EntitySpec,
    spans: Iterable[tuple[datetime, datetime]],
    ours: pl.Series | None = None,
) -> Listing:
    """Ids Kustomer holds for `spans` now, each span cut into windows it can page through.

    `ours` (our records' `updated_at`s in the spans) places the first cuts; a window Kustomer
    counts above `WINDOW_MAX_RECORDS` is split in equal parts and counted again."""
    if not isinstance(spec.source, SearchSource):
        raise TypeError(f"{spec.name} is not read through search")
    context = spec.source.query_context
    times = ours if ours is not None else pl.Series([], dtype=TIMESTAMP)
    pending: list[tuple[datetime, datetime]] = []
    for lo, hi in spans:
        inside = times.filter((times >= lo) & (times < hi))
        pending.extend(_cut_by(lo, hi, inside))
    listing = Listing()
    while pending:
        lo, hi = pending.pop(0)
        window = client.search_window(context, lo, hi, role=spec.role)
        counted = window.count()
        listing.counts += 1
        if counted is not None and counted > WINDOW_MAX_RECORDS and hi - lo > _MIN_SPLIT:
            pending[:0] = _equal_parts(lo, hi, math.ceil(counted / WINDOW_TARGET_RECORDS))
            continue
        ids = window.list_ids() if counted != 0 else []
        listing.windows.append(ListedWindow(lo, hi, counted, len(ids)))
        listing.ids.update(ids)
    return listing


def _merged_spans(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(s for s in spans if s[0] < s[1]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def relisting_spans(
    candidates: pl.DataFrame, listing_started: datetime, span_start: datetime, now: datetime
) -> list[tuple[datetime, datetime]]:
    """Where a record the listing missed can still be: after the listing started (touched
    meanwhile) or in the hour of its last update we know of (shifted out, untouched)."""
    hours = (
        candidates.select(pl.col("last_updated_at").dt.truncate("1h").unique().sort())
        .to_series()
        .to_list()
    )
    end = now + TOUCHED_MARGIN
    spans = [(listing_started - TOUCHED_MARGIN, end)]
    spans += [(max(_utc(h), span_start), min(_utc(h) + RELISTING_SPAN, end)) for h in hours]
    return _merged_spans(spans)


# ----------------------------------------------------------------------------- confirmation


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


# ----------------------------------------------------------------------------- one entity


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
