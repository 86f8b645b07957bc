"""Reading a window with a cursor on the sort key: the pages, the ties and the bisection.

Every page here is page 1 of a new query that starts at the last `updatedAt` seen (`gte`,
de-duplicated on (id, updatedAt)). For any record that stays put during the run this is exact
as long as the server sorts: the query that starts at or before its `updatedAt` returns it
before anything later. It also never pages deep, so Kustomer's deep-paging wall (about page
100) is out of the way. A page that is one tie (every record shares the cursor's millisecond)
is split on createdAt the same way; a tie in both is paged by number, the only place left where
the wall matters. A server that does not sort is bisected into sub-windows small enough to be
read in one page, where order does not matter.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kustomer_assets.timestamps import iso_ms

from ..errors import KustomerIncompleteError, KustomerResponseError
from ..jsonapi import Record, attr, parse_time
from .body import field_name
from .plan import (
    MAX_TIE_PAGES,
    Page,
    Query,
    cursor_step,
    has_more,
    narrow,
    query_allowance,
    read_page,
    record_key,
    tie_query,
)

if TYPE_CHECKING:
    from .endpoint import SearchEndpoint
    from .window import SearchWindow


class CursorRun:
    """One iteration over a SearchWindow: the versions seen so far and the query budget.

    The id check (`completeness.Reconciler`) works on the same run, so that what it re-reads
    is de-duplicated against what the cursor already yielded."""

    def __init__(self, endpoint: SearchEndpoint, window: SearchWindow) -> None:
        self.endpoint = endpoint
        self.window = window
        self.ctx = window.query_context
        self.seen: set[tuple[str, str]] = set()
        """Every (id, updatedAt) yielded: one per version of a record."""
        self.latest: dict[str, datetime] = {}
        """id -> the latest updatedAt read in the window."""
        self.log: logging.Logger = endpoint.log

    # -- requests ------------------------------------------------------------------------------

    def body(self, query: Query) -> dict[str, Any]:
        """The search body of `query` in this window's context."""
        return query.body(self.ctx, include_deleted=self.window.include_deleted)

    def spend_query(self) -> None:
        """Count one query against the window's allowance; fail the window past it."""
        w = self.window
        known = max(w.reported_total or 0, w.records)
        if w.queries >= query_allowance(known, self.endpoint.page_hint()):
            raise self.incomplete(f"gave up after {w.queries} queries")
        w.queries += 1

    def fetch(self, query: Query, page: int = 1, *, path: str | None = None) -> Page:
        """One page of `query`; `path` is a next link to follow instead of page N."""
        self.spend_query()
        payload = self.endpoint.page(self.body(query), page=page, path=path, role=self.window.role)
        return read_page(payload, query)

    def fresh(self, records: list[Record]) -> list[Record]:
        """Records not yet yielded, inside the window (a server that ignores the filter must not
        leak other windows into this one)."""
        w = self.window
        out = []
        for record in records:
            key = record_key(record)
            if key in self.seen:
                continue
            updated = parse_time(attr(record, "updatedAt"))
            if updated is not None and not (w.start <= updated < w.end):
                continue
            self.seen.add(key)
            rid = key[0]
            if updated is not None and (rid not in self.latest or updated > self.latest[rid]):
                self.latest[rid] = updated
            out.append(record)
        if out:
            w.records += len(out)
        return out

    def more(self, page: Page) -> bool:
        """Whether the page's query holds records beyond it (see `plan.has_more`)."""
        return has_more(page, self.endpoint.page_hint())

    def learn(self, page: Page) -> None:
        """A page shorter than asked while more remain is the server's real page size."""
        if self.more(page) and page.records:
            self.endpoint.learn_page_size(len(page.records))

    def incomplete(self, reason: str) -> KustomerIncompleteError:
        """The error that fails this window, with what it had read."""
        w = self.window
        return KustomerIncompleteError(
            self.ctx,
            w.start,
            w.end,
            reported_total=w.reported_total,
            received=w.records,
            reason=reason,
        )

    # -- the cursor ----------------------------------------------------------------------------

    def cursor(self, query: Query, *, first: bool = False) -> Iterator[list[Record]]:
        """Page `query` by moving its lower bound to the last value seen (see module doc).

        `first` marks the window's opening query, whose total is the window's reported one."""
        cursor = query.lo
        while cursor < query.hi:
            current = Query(query.on, cursor, query.hi, query.fixed)
            page = self.fetch(current)
            if first:
                self.window.reported_total = page.total
                first = False
            if not page.sorted_ok:
                self.endpoint.stats.add(window_narrowings=1)
                self.log.info(
                    "Kustomer search %s [%s, %s): results not sorted by %s; reading it in "
                    "sub-windows small enough for one page",
                    self.ctx,
                    iso_ms(current.lo),
                    iso_ms(current.hi),
                    field_name(self.ctx, query.on),
                )
                yield from self._bisect(current, page)
                return
            self.learn(page)
            fresh = self.fresh(page.records)
            if fresh:
                yield fresh
            step = cursor_step(page, cursor, query.hi, self.endpoint.page_hint())
            if step.action == "advance" and step.at is not None:
                cursor = step.at
            elif step.action == "split_tie" and step.at is not None and step.until is not None:
                # Every record on a full page shares the cursor's millisecond: split that tie.
                yield from self._split_tie(current, step.at, step.until)
                cursor = step.until
            else:
                return

    def _split_tie(self, query: Query, lo: datetime, hi: datetime) -> Iterator[list[Record]]:
        self.endpoint.stats.add(window_narrowings=1)
        if query.on == "updated":
            self.log.info(
                "Kustomer search %s: more records share updatedAt %s than one page; paging "
                "them by createdAt",
                self.ctx,
                iso_ms(lo),
            )
            yield from self.cursor(tie_query(self.ctx, query, lo, hi))
            return
        yield from self._page_numbers(Query(query.on, lo, hi, query.fixed), lo)

    def _page_numbers(self, query: Query, at: datetime) -> Iterator[list[Record]]:
        """A tie in updatedAt and createdAt: only page numbers are left (the server orders a
        tie by id). Records that change leave the tie, so this can only skip records that the
        reconciliation then re-reads; the deep-paging wall here is a hard limit."""
        page_no, path, got = 1, None, 0
        while page_no <= MAX_TIE_PAGES:
            try:
                page = self.fetch(query, page_no, path=path)
            except KustomerResponseError as exc:
                if page_no > 1 and exc.status in (400, 404):
                    raise self.incomplete(
                        f"more records share updatedAt and createdAt {iso_ms(at)} than "
                        f"Kustomer pages through (page {page_no} answered {exc.status})"
                    ) from None
                raise
            fresh = self.fresh(page.records)
            got += len(page.records)
            if fresh:
                yield fresh
            if page.next_link is None or not page.records:
                if page.total is not None and got < page.total:
                    raise self.incomplete(
                        f"more records share updatedAt and createdAt {iso_ms(at)} than "
                        f"Kustomer pages through (no next page after {got} of {page.total})"
                    )
                return
            page_no, path = page_no + 1, self.endpoint.local_path(page.next_link)
        raise self.incomplete(f"a tie at {iso_ms(at)} did not end after {MAX_TIE_PAGES} pages")

    def _bisect(self, query: Query, first: Page) -> Iterator[list[Record]]:
        """For a server that does not sort: halve until a sub-window fits in one page."""
        stack: list[tuple[Query, Page | None]] = [(query, first)]
        while stack:
            current, page = stack.pop()
            if page is None:
                page = self.fetch(current)
            if not self.more(page):
                fresh = self.fresh(page.records)
                if fresh:
                    yield fresh
                continue
            self.learn(page)
            parts = narrow(self.ctx, current)
            if not parts:
                yield from self._page_numbers(current, current.lo)
                continue
            if len(parts) > 1:
                self.endpoint.stats.add(window_narrowings=1)
            # Oldest part on top of the stack: read first.
            stack.extend((part, None) for part in reversed(parts))


__all__ = ["CursorRun"]
