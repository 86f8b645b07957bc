"""The values a search window is read with, and the decisions that need no request.

A `Query` is one half-open range on one timestamp; a `Page` is what one answer to it said.
Whether to move the cursor, split a tie or halve an unsorted range is decided here from those
values alone, so each rule can be tested without a server and the modules that send requests
(`cursor`, `completeness`) only carry the decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ..jsonapi import ONE_MS, Record, attr, floor_ms, next_link, parse_time, records, total
from .body import Criterion, TimeField, field_name, range_criteria, search_body

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""createdAt bounds for splitting a tie: imported records may carry createdAt after updatedAt."""

MAX_TIE_PAGES = 10_000
BASE_QUERY_ALLOWANCE = 300
"""Queries a window may spend beyond one per page of its records before it gives up: bounds a
server that ignores the criteria, which would otherwise be queried forever."""


def record_key(record: Record) -> tuple[str, str]:
    """(id, updatedAt): one version of one record, the unit every table is keyed on."""
    updated = attr(record, "updatedAt")
    return (str(record.get("id")), "" if updated is None else str(updated))


@dataclass(frozen=True)
class Query:
    """Records with `on` in [lo, hi) plus fixed criteria (the updatedAt ms of a tie)."""

    on: TimeField
    lo: datetime
    hi: datetime
    fixed: tuple[Criterion, ...] = ()

    def body(self, query_context: str, *, include_deleted: bool) -> dict[str, Any]:
        """The search body of this query, sorted ascending on `on` as the cursor needs."""
        return search_body(
            query_context,
            since=self.lo,
            until=self.hi,
            on=self.on,
            fixed=self.fixed,
            include_deleted=include_deleted,
        )


@dataclass
class Page:
    """One answer to a `Query`: its records and what they say about the server's order."""

    records: list[Record]
    total: int | None
    next_link: str | None
    sorted_ok: bool
    """False when the records are not ascending on the query's field, lack it, or fall
    outside the query's range: such a server cannot be read with a cursor."""
    last_value: datetime | None
    """The greatest value of the query's field on the page: where the cursor moves next."""


def read_page(payload: dict[str, Any], query: Query) -> Page:
    """A search answer to `query` read into a `Page`."""
    name = "updatedAt" if query.on == "updated" else "createdAt"
    rows = records(payload)
    sorted_ok, last, previous = True, None, None
    for record in rows:
        value = parse_time(attr(record, name))
        if value is None or (previous is not None and value < previous):
            sorted_ok = False
        if value is not None:
            if value < query.lo or value >= query.hi:
                sorted_ok = False  # a server that ignores the criterion cannot be cursored
            previous = value if previous is None else max(previous, value)
            last = previous
    return Page(
        records=rows,
        total=total(payload),
        next_link=next_link(payload),
        sorted_ok=sorted_ok,
        last_value=last,
    )


def has_more(page: Page, page_hint: int) -> bool:
    """Whether the query holds records beyond this page (its own next link or total, or a
    full page of `page_hint` records when the server says neither)."""
    if page.total is not None:
        return page.total > len(page.records)
    if page.next_link is not None:
        return True
    return len(page.records) >= page_hint


def query_allowance(known_records: int, per_page: int) -> int:
    """Queries a window may send for `known_records`: four per page of them plus a fixed
    allowance, enough for every split the cursor makes and finite for a server that
    ignores the criteria."""
    return BASE_QUERY_ALLOWANCE + 4 * (known_records // max(1, per_page) + 1)


@dataclass(frozen=True)
class CursorStep:
    """What the cursor does after a sorted page: stop, move to `at`, or split the tie of
    the millisecond [at, until) because a whole page shares it."""

    action: Literal["stop", "advance", "split_tie"]
    at: datetime | None = None
    until: datetime | None = None


def cursor_step(page: Page, cursor: datetime, hi: datetime, page_hint: int) -> CursorStep:
    """The next move of a cursor at `cursor` that read `page` of a query ending at `hi`.

    The cursor moves to the page's last value (`gte`, so records sharing it are read again
    and de-duplicated rather than skipped); when that is where it already is, the page is one
    tie and the next millisecond is split off."""
    if not has_more(page, page_hint) or page.last_value is None:
        return CursorStep("stop")
    last = floor_ms(page.last_value)
    if last > cursor:
        return CursorStep("advance", at=last)
    return CursorStep("split_tie", at=cursor, until=min(cursor + ONE_MS, hi))


def tie_query(query_context: str, query: Query, lo: datetime, hi: datetime) -> Query:
    """The records of `query` with updatedAt in [lo, hi) (one millisecond), by createdAt."""
    fixed = (*query.fixed, *range_criteria(field_name(query_context, query.on), lo, hi))
    return Query("created", EARLIEST, LATEST, fixed)


def midpoint(lo: datetime, hi: datetime) -> datetime:
    """A millisecond strictly inside (lo, hi] that halves the range, for ranges over 1 ms."""
    mid = floor_ms(lo + (hi - lo) / 2)
    return mid if mid > lo else lo + ONE_MS


def narrow(query_context: str, query: Query) -> list[Query]:
    """How to read a query that holds more than a page from a server that does not sort.

    Its two halves, oldest first, while it spans more than a millisecond; within one
    millisecond of updatedAt, the same records by createdAt; within one millisecond of both,
    nothing narrower exists (`[]`), and only page numbers are left."""
    if query.hi - query.lo > ONE_MS:
        mid = midpoint(query.lo, query.hi)
        return [
            Query(query.on, query.lo, mid, query.fixed),
            Query(query.on, mid, query.hi, query.fixed),
        ]
    if query.on == "created":
        return []
    return [tie_query(query_context, query, query.lo, query.hi)]


__all__ = [
    "EARLIEST",
    "LATEST",
    "CursorStep",
    "Page",
    "Query",
    "cursor_step",
    "has_more",
    "midpoint",
    "narrow",
    "query_allowance",
    "read_page",
    "record_key",
    "tie_query",
]
