"""Search windows that cannot skip a record while the org changes underneath them.

Why not page numbers: a search sorted by updatedAt and paged by `page=N` is a moving list. When
an agent touches a record that was already served, it jumps to the end (or out of a past
window), every record behind it moves up one place, and the record at the next page boundary
is never served; counts cannot tell (the moved record fills the gap). See the API notes, "A
live org".

So every page here is page 1 of a new query that starts at the last `updatedAt` seen (`gte`,
de-duplicated on (id, updatedAt)). For any record that stays put during the run this is exact
as long as the server sorts: the query that starts at or before its `updatedAt` returns it
before anything later. It also never pages deep, so Kustomer's deep-paging wall (about page
100) is out of the way. A page that is one tie (every record shares the cursor's millisecond)
is split on createdAt the same way; a tie in both is paged by number, the only place left where
the wall matters. A server that does not sort is bisected into sub-windows small enough to be
read in one page, where order does not matter.

After the pages, `reconcile` compares ids, not counts: it asks for the window's current count;
when that, the first reported total and the distinct ids read all agree, nothing moved and the
window is proven complete for one request. Otherwise an `idsOnly` pass lists the ids Kustomer
holds now; any we lack are re-read from the cursor around the place the listing put them, and
an id still unaccounted for fails the window. What changed during the run is counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .errors import KustomerIncompleteError, KustomerResponseError, iso_ms
from .parse import int_or_none, parse_time

if TYPE_CHECKING:
    from .client import KustomerClient

_ONE_MS = timedelta(milliseconds=1)
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# createdAt bounds for splitting a tie: imported records may carry createdAt after updatedAt.
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_MAX_TIE_PAGES = 10_000
_BASE_QUERY_ALLOWANCE = 300
"""Queries a window may spend beyond one per page of its records before it gives up: bounds a
server that ignores the criteria, which would otherwise be queried forever."""

VERIFY_MODES = ("auto", "always")

Record = dict[str, Any]


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _floor_ms(value: datetime) -> datetime:
    return value.replace(microsecond=(value.microsecond // 1000) * 1000)


def _attr(record: Record, name: str) -> Any:
    attributes = record.get("attributes")
    if isinstance(attributes, dict) and name in attributes:
        return attributes.get(name)
    return record.get(name)


def record_key(record: Record) -> tuple[str, str]:
    """(id, updatedAt): one version of one record, the unit every table is keyed on."""
    updated = _attr(record, "updatedAt")
    return (str(record.get("id")), "" if updated is None else str(updated))


@dataclass
class _Query:
    """Records with `field` in [lo, hi) plus fixed criteria (the updatedAt ms of a tie)."""

    field: str  # "updated" or "created"
    lo: datetime
    hi: datetime
    fixed: tuple[dict[str, Any], ...] = ()


@dataclass
class _Page:
    records: list[Record]
    total: int | None
    next_link: str | None
    sorted_ok: bool
    last_value: datetime | None


@dataclass
class Reconciliation:
    """What the id comparison after a window found; `verified_by` says how it was proven."""

    verified_by: str = ""
    count_after: int | None = None
    ids_listed: int | None = None
    refetched: int = 0
    changed_during_run: int = 0
    unaccounted: int = 0


class SearchWindow:
    """Iterable of pages (lists of records new to this iteration) updated in [start, end).

    Counters are filled in while iterating, `reconciliation` at the end of it; each iteration
    runs the search from scratch."""

    def __init__(
        self,
        client: KustomerClient,
        query_context: str,
        start: datetime,
        end: datetime,
        *,
        role: str | None,
        include_deleted: bool,
        verify: str = "auto",
    ) -> None:
        if verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {VERIFY_MODES}, not {verify!r}")
        self.query_context = query_context
        self.start = _as_utc(start)
        self.end = _as_utc(end)
        self.role = role
        self.include_deleted = include_deleted
        self.verify = verify
        self.reported_total: int | None = None
        self.records = 0
        self.queries = 0
        self.reconciliation = Reconciliation()
        self._client = client

    def __iter__(self) -> Iterator[list[Record]]:
        self.reported_total = None
        self.records = 0
        self.queries = 0
        self.reconciliation = Reconciliation()
        return _WindowRun(self._client, self).pages()

    def first_page(self) -> list[Record]:
        """Only the oldest page of the window (one request, no id check): what a sensor needs
        to learn which days changed without spending the search budget on the rest."""
        run = _WindowRun(self._client, self)
        page = run._fetch(_Query("updated", self.start, self.end))
        self.reported_total = page.total
        return run._fresh(page.records)

    def count(self) -> int | None:
        """How many records Kustomer holds for the window now (one request, page size 1), or
        None when it reports no total: what a listing is sized by before it pages, so that
        no listing runs into the deep-paging wall."""
        return _WindowRun(self._client, self)._count(self.start, self.end)

    def list_ids(self) -> list[str]:
        """Ids Kustomer lists for the window now (`idsOnly` pages, split at the deep-paging
        wall): the cheap listing a reconciliation of hard deletes compares a table with."""
        run = _WindowRun(self._client, self)
        return [rid for rid, _ in run._list_ids(self.start, self.end)]

    def __repr__(self) -> str:
        return (
            f"SearchWindow({self.query_context!r}, {iso_ms(self.start)}, {iso_ms(self.end)}, "
            f"reported_total={self.reported_total}, records={self.records})"
        )


class _WindowRun:
    """One iteration over a SearchWindow: the versions seen so far and the query budget."""

    def __init__(self, client: KustomerClient, window: SearchWindow) -> None:
        self.client = client
        self.window = window
        self.ctx = window.query_context
        self.seen: set[tuple[str, str]] = set()
        self.latest: dict[str, datetime] = {}  # id -> latest updatedAt read in the window
        self.ids_only = True
        self.log: logging.Logger | Any = client.log

    # -- queries ---------------------------------------------------------------------------

    def _name(self, which: str) -> str:
        return f"{self.ctx}_{'updated_at' if which == 'updated' else 'created_at'}"

    def _body(self, query: _Query) -> dict[str, Any]:
        name = self._name(query.field)
        return {
            "queryContext": self.ctx,
            "and": [
                *query.fixed,
                {name: {"gte": iso_ms(query.lo)}},
                {name: {"lt": iso_ms(query.hi)}},
            ],
            "sort": [{name: "asc"}],
            "includeDeleted": self.window.include_deleted,
        }

    def _budget_check(self) -> None:
        w = self.window
        per_page = max(1, self.client.search_page_hint())
        known = max(w.reported_total or 0, w.records)
        if w.queries >= _BASE_QUERY_ALLOWANCE + 4 * (known // per_page + 1):
            raise self._incomplete(f"gave up after {w.queries} queries")
        w.queries += 1

    def _fetch(self, query: _Query, page: int = 1, *, path: str | None = None) -> _Page:
        """One page of `query`; `path` is a next link to follow instead of page N."""
        self._budget_check()
        payload = self.client.search_page(
            self._body(query),
            page=page,
            path=path,
            role=self.window.role,
        )
        attr = "updatedAt" if query.field == "updated" else "createdAt"
        records = [r for r in payload.get("data") or [] if isinstance(r, dict)]
        meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
        sorted_ok, last, previous = True, None, None
        for record in records:
            value = parse_time(_attr(record, attr))
            if value is None or (previous is not None and value < previous):
                sorted_ok = False
            if value is not None:
                if value < query.lo or value >= query.hi:
                    sorted_ok = False  # a server that ignores the criterion cannot be cursored
                previous = value if previous is None else max(previous, value)
                last = previous
        links = payload.get("links") if isinstance(payload.get("links"), dict) else {}
        nxt = links.get("next")
        return _Page(
            records=records,
            total=int_or_none(meta.get("total")),
            next_link=nxt if isinstance(nxt, str) and nxt.strip() else None,
            sorted_ok=sorted_ok,
            last_value=last,
        )

    def _fresh(self, records: list[Record]) -> list[Record]:
        """Records not yet yielded, inside the window (a server that ignores the filter must not
        leak other windows into this one)."""
        w = self.window
        out = []
        for record in records:
            key = record_key(record)
            if key in self.seen:
                continue
            updated = parse_time(_attr(record, "updatedAt"))
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

    def _more(self, page: _Page) -> bool:
        """Whether the query holds records beyond this page (its own next link or total, or a
        full page when the server says neither)."""
        if page.total is not None:
            return page.total > len(page.records)
        if page.next_link is not None:
            return True
        return len(page.records) >= self.client.search_page_hint()

    def _learn(self, page: _Page) -> None:
        # A page shorter than asked while more remain is the server's real page size.
        if self._more(page) and page.records:
            self.client.learn_search_page_size(len(page.records))

    # -- the cursor ------------------------------------------------------------------------

    def pages(self) -> Iterator[list[Record]]:
        w = self.window
        if w.end <= w.start:
            w.reported_total = 0
            return
        yield from self._cursor(_Query("updated", w.start, w.end), first=True)
        yield from self._reconcile()

    def _cursor(self, query: _Query, *, first: bool = False) -> Iterator[list[Record]]:
        """Page `query` by moving its lower bound to the last value seen (see module doc)."""
        cursor = query.lo
        while cursor < query.hi:
            current = _Query(query.field, cursor, query.hi, query.fixed)
            page = self._fetch(current)
            if first:
                self.window.reported_total = page.total
                first = False
            if not page.sorted_ok:
                self.client.stats.add(window_narrowings=1)
                self.log.info(
                    "Kustomer search %s [%s, %s): results not sorted by %s; reading it in "
                    "sub-windows small enough for one page",
                    self.ctx,
                    iso_ms(current.lo),
                    iso_ms(current.hi),
                    self._name(query.field),
                )
                yield from self._bisect(current, page)
                return
            self._learn(page)
            fresh = self._fresh(page.records)
            if fresh:
                yield fresh
            if not self._more(page) or page.last_value is None:
                return
            last = _floor_ms(page.last_value)
            if last > cursor:
                cursor = last
                continue
            # Every record on a full page shares the cursor's millisecond: split that tie.
            tie_hi = min(cursor + _ONE_MS, query.hi)
            yield from self._split_tie(current, cursor, tie_hi)
            cursor = tie_hi

    def _split_tie(self, query: _Query, lo: datetime, hi: datetime) -> Iterator[list[Record]]:
        self.client.stats.add(window_narrowings=1)
        name = self._name(query.field)
        fixed = (*query.fixed, {name: {"gte": iso_ms(lo)}}, {name: {"lt": iso_ms(hi)}})
        if query.field == "updated":
            self.log.info(
                "Kustomer search %s: more records share updatedAt %s than one page; paging "
                "them by createdAt",
                self.ctx,
                iso_ms(lo),
            )
            yield from self._cursor(_Query("created", _EARLIEST, _LATEST, fixed))
            return
        yield from self._page_numbers(_Query(query.field, lo, hi, query.fixed), lo)

    def _page_numbers(self, query: _Query, at: datetime) -> Iterator[list[Record]]:
        """A tie in updatedAt and createdAt: only page numbers are left (the server orders a
        tie by id). Records that change leave the tie, so this can only skip records that the
        reconciliation then re-reads; the deep-paging wall here is a hard limit."""
        page_no, path, got = 1, None, 0
        while page_no <= _MAX_TIE_PAGES:
            try:
                page = self._fetch(query, page_no, path=path)
            except KustomerResponseError as exc:
                if page_no > 1 and exc.status in (400, 404):
                    raise self._incomplete(
                        f"more records share updatedAt and createdAt {iso_ms(at)} than "
                        f"Kustomer pages through (page {page_no} answered {exc.status})"
                    ) from None
                raise
            fresh = self._fresh(page.records)
            got += len(page.records)
            if fresh:
                yield fresh
            if page.next_link is None or not page.records:
                if page.total is not None and got < page.total:
                    raise self._incomplete(
                        f"more records share updatedAt and createdAt {iso_ms(at)} than "
                        f"Kustomer pages through (no next page after {got} of {page.total})"
                    )
                return
            page_no, path = page_no + 1, self.client.local_path(page.next_link)
        raise self._incomplete(f"a tie at {iso_ms(at)} did not end after {_MAX_TIE_PAGES} pages")

    def _bisect(self, query: _Query, first: _Page) -> Iterator[list[Record]]:
        """For a server that does not sort: halve until a sub-window fits in one page."""
        stack: list[tuple[_Query, _Page | None]] = [(query, first)]
        while stack:
            current, page = stack.pop()
            if page is None:
                page = self._fetch(current)
            if not self._more(page):
                self._learn(page)
                fresh = self._fresh(page.records)
                if fresh:
                    yield fresh
                continue
            self._learn(page)
            span = current.hi - current.lo
            if span <= _ONE_MS:
                if current.field == "created":
                    yield from self._page_numbers(current, current.lo)
                    continue
                name = self._name("updated")
                fixed = (
                    *current.fixed,
                    {name: {"gte": iso_ms(current.lo)}},
                    {name: {"lt": iso_ms(current.hi)}},
                )
                stack.append((_Query("created", _EARLIEST, _LATEST, fixed), None))
                continue
            self.client.stats.add(window_narrowings=1)
            mid = _floor_ms(current.lo + span / 2)
            if mid <= current.lo:
                mid = current.lo + _ONE_MS
            stack.append((_Query(current.field, mid, current.hi, current.fixed), None))
            stack.append((_Query(current.field, current.lo, mid, current.fixed), None))

    # -- reconciliation --------------------------------------------------------------------

    def _count(self, lo: datetime, hi: datetime) -> int | None:
        self._budget_check()
        body = self._body(_Query("updated", lo, hi))
        payload = self.client.search_page(body, page=1, page_size=1, role=self.window.role)
        meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
        return int_or_none(meta.get("total"))

    def _list_ids(self, lo: datetime, hi: datetime) -> list[tuple[str, Record]]:
        """(id, resource) of every record Kustomer lists in [lo, hi) now, in its order.

        Page numbers are fine here: a record skipped because another moved is one the cursor
        already read, and a listing that hits the deep-paging wall is split in two."""
        query = _Query("updated", lo, hi)
        out: list[tuple[str, Record]] = []
        listed: set[str] = set()
        page_no, got = 1, 0
        while True:
            try:
                self._budget_check()
                # Page numbers of our own, not next links: a link may drop idsOnly.
                payload = self.client.search_page(
                    self._body(query), page=page_no, role=self.window.role, ids_only=self.ids_only
                )
            except KustomerResponseError as exc:
                if page_no == 1 and self.ids_only and exc.status == 400:
                    # idsOnly is a documented search extra, but a server may refuse it.
                    self.ids_only = False
                    continue
                if page_no > 1 and exc.status in (400, 404):
                    return self._split_listing(lo, hi, out)
                raise
            records = [r for r in payload.get("data") or [] if isinstance(r, dict)]
            meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
            total = int_or_none(meta.get("total"))
            got += len(records)
            for record in records:
                rid = record.get("id")
                if rid is not None and str(rid) not in listed:
                    listed.add(str(rid))
                    out.append((str(rid), record))
            links = payload.get("links") if isinstance(payload.get("links"), dict) else {}
            nxt = links.get("next")
            if isinstance(nxt, str) and nxt.strip() and records:
                page_no += 1
                continue
            if total is not None and got < total:
                return self._split_listing(lo, hi, out)
            return out

    def _split_listing(
        self, lo: datetime, hi: datetime, partial: list[tuple[str, Record]]
    ) -> list[tuple[str, Record]]:
        if hi - lo <= _ONE_MS:
            self.log.warning(
                "Kustomer search %s: more records share updatedAt %s than an id listing pages "
                "through; %d of them were listed",
                self.ctx,
                iso_ms(lo),
                len(partial),
            )
            return partial
        mid = _floor_ms(lo + (hi - lo) / 2)
        if mid <= lo:
            mid = lo + _ONE_MS
        return [*self._list_ids(lo, mid), *self._list_ids(mid, hi)]

    def _reconcile(self) -> Iterator[list[Record]]:
        w, rec = self.window, self.window.reconciliation
        have = len(self.latest)
        reread = len(self.seen) - have  # versions beyond one per id: records that moved
        rec.count_after = self._count(w.start, w.end)
        quiet = (
            not reread
            and rec.count_after is not None
            and rec.count_after == w.reported_total == have
        )
        if quiet and w.verify == "auto":
            rec.verified_by = "counts"
            return
        listing = self._list_ids(w.start, w.end)
        rec.ids_listed = len(listing)
        rec.verified_by = "ids"
        listed = {rid for rid, _ in listing}
        missing = [i for i, (rid, _) in enumerate(listing) if rid not in self.latest]
        before = w.records
        # A server that ignores idsOnly sends whole records: those need no second request.
        whole = [listing[i][1] for i in missing]
        fresh = self._fresh([r for r in whole if parse_time(_attr(r, "updatedAt"))])
        if fresh:
            yield fresh
        still = [i for i in missing if listing[i][0] not in self.latest]
        ranges = self._ranges_around(listing, still)
        for lo, hi in ranges:
            yield from self._cursor(_Query("updated", lo, hi))
        lost = [listing[i][0] for i in still if listing[i][0] not in self.latest]
        if lost and ranges:
            # Neighbours may have moved since they were read: re-read to the window's end once.
            yield from self._cursor(_Query("updated", min(lo for lo, _ in ranges), w.end))
            lost = [rid for rid in lost if rid not in self.latest]
        if lost:
            # Still listed now? Then Kustomer holds records the cursor cannot reach.
            again = {rid for rid, _ in self._list_ids(w.start, w.end)}
            lost = [rid for rid in lost if rid in again]
        rec.refetched = w.records - before
        rec.changed_during_run = len(set(self.latest) - listed) + len(missing) - len(lost) + reread
        rec.unaccounted = len(lost)
        if lost:
            raise self._incomplete(
                f"{len(lost)} record(s) Kustomer lists for the window could not be read, e.g. "
                f"{', '.join(sorted(lost)[:3])}"
            )
        if rec.refetched or rec.changed_during_run:
            self.log.info(
                "Kustomer search %s [%s, %s): %d records changed while the run paged; %d re-read "
                "after the id check",
                self.ctx,
                iso_ms(w.start),
                iso_ms(w.end),
                rec.changed_during_run,
                rec.refetched,
            )

    def _ranges_around(
        self, listing: list[tuple[str, Record]], positions: list[int]
    ) -> list[tuple[datetime, datetime]]:
        """updatedAt ranges that must hold each missing id: between the known records the
        listing put before and after it (the listing is sorted by updatedAt)."""
        w = self.window
        ranges: list[tuple[datetime, datetime]] = []
        for i in positions:
            lo = next(
                (self.latest[r] for r, _ in reversed(listing[:i]) if r in self.latest), w.start
            )
            hi = next((self.latest[r] for r, _ in listing[i + 1 :] if r in self.latest), None)
            hi = w.end if hi is None else min(w.end, _floor_ms(hi) + _ONE_MS)
            lo = _floor_ms(lo)
            if ranges and lo <= ranges[-1][1]:
                ranges[-1] = (ranges[-1][0], max(ranges[-1][1], hi))
            else:
                ranges.append((lo, hi))
        return ranges

    def _incomplete(self, reason: str) -> KustomerIncompleteError:
        w = self.window
        return KustomerIncompleteError(
            self.ctx,
            w.start,
            w.end,
            reported_total=w.reported_total,
            received=w.records,
            reason=reason,
        )
