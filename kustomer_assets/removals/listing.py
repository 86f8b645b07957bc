"""Listing the ids Kustomer holds for a span, in windows no listing meets the deep-paging wall in.

Step 1 of `removals` (and the re-listing of step 3 for entities without a by-id endpoint): each
window is sized by one count request, cut where our own records say and split again where
Kustomer counts more, then read as `idsOnly` search pages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import polars as pl

from kustomer_assets.entities import EntitySpec, SearchSource
from kustomer_assets.kustomer import KustomerClient
from kustomer_assets.records import TIMESTAMP

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
_MIN_SPLIT = timedelta(minutes=1)


def _floor_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
