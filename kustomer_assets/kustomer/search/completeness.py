"""Proving a search window complete by ids, not by counts.

After the pages, `reconcile` compares ids, not counts: it asks for the window's current count;
when that, the first reported total and the distinct ids read all agree, nothing moved and the
window is proven complete for one request. Otherwise an `idsOnly` pass lists the ids Kustomer
holds now; any we lack are re-read from the cursor around the place the listing put them, and
an id still unaccounted for fails the window. What changed during the run is counted.

Counts alone cannot prove it: a record that moved out of a page boundary is replaced in the
count by its own new version, or by a new record (see the API notes, "A live org").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from kustomer_assets.timestamps import iso_ms

from ..errors import KustomerResponseError
from ..jsonapi import ONE_MS, Record, attr, floor_ms, next_link, parse_time, records, total
from .cursor import CursorRun
from .plan import Query, midpoint


@dataclass
class Reconciliation:
    """What the id comparison after a window found; `verified_by` says how it was proven."""

    verified_by: str = ""
    count_after: int | None = None
    ids_listed: int | None = None
    refetched: int = 0
    changed_during_run: int = 0
    unaccounted: int = 0


def counts_prove_complete(
    *,
    count_after: int | None,
    reported_total: int | None,
    distinct_ids: int,
    versions: int,
    verify: str,
) -> bool:
    """Whether counts alone prove a window complete, so the id listing can be skipped.

    Only when nothing moved: no id was read in two versions, and the count now, the total
    first reported and the ids read are one number. `verify="always"` never skips it."""
    if verify != "auto" or versions != distinct_ids or count_after is None:
        return False
    return count_after == reported_total == distinct_ids


def ranges_around(
    listing: Sequence[str],
    positions: Sequence[int],
    latest: Mapping[str, datetime],
    start: datetime,
    end: datetime,
) -> list[tuple[datetime, datetime]]:
    """updatedAt ranges that must hold each missing id: between the known records the
    listing put before and after it (the listing is sorted by updatedAt).

    `listing` is the ids in Kustomer's order, `positions` the indexes of the missing ones,
    `latest` the updatedAt read per known id; overlapping ranges are merged."""
    ranges: list[tuple[datetime, datetime]] = []
    for i in positions:
        lo = next((latest[r] for r in reversed(listing[:i]) if r in latest), start)
        after = next((latest[r] for r in listing[i + 1 :] if r in latest), None)
        hi = end if after is None else min(end, floor_ms(after) + ONE_MS)
        lo = floor_ms(lo)
        if ranges and lo <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], hi))
        else:
            ranges.append((lo, hi))
    return ranges


class Reconciler:
    """The count and the id listing of one window run, and the re-reads they call for."""

    def __init__(self, run: CursorRun) -> None:
        self.run = run
        self.ids_only = True
        """False once the server refused `idsOnly`: whole records are listed instead."""

    def count(self, lo: datetime, hi: datetime) -> int | None:
        """How many records Kustomer holds with updatedAt in [lo, hi) now (page size 1)."""
        run = self.run
        run.spend_query()
        body = run.body(Query("updated", lo, hi))
        payload = run.endpoint.page(body, page=1, page_size=1, role=run.window.role)
        return total(payload)

    def list_ids(self, lo: datetime, hi: datetime) -> list[tuple[str, Record]]:
        """(id, resource) of every record Kustomer lists in [lo, hi) now, in its order.

        Page numbers are fine here: a record skipped because another moved is one the cursor
        already read, and a listing that hits the deep-paging wall is split in two."""
        run = self.run
        body = run.body(Query("updated", lo, hi))
        out: list[tuple[str, Record]] = []
        listed: set[str] = set()
        page_no, got = 1, 0
        while True:
            try:
                run.spend_query()
                # Page numbers of our own, not next links: a link may drop idsOnly.
                payload = run.endpoint.page(
                    body, page=page_no, role=run.window.role, ids_only=self.ids_only
                )
            except KustomerResponseError as exc:
                if page_no == 1 and self.ids_only and exc.status == 400:
                    # idsOnly is a documented search extra, but a server may refuse it.
                    self.ids_only = False
                    continue
                if page_no > 1 and exc.status in (400, 404):
                    return self._split_listing(lo, hi, out)
                raise
            rows = records(payload)
            reported = total(payload)
            got += len(rows)
            for record in rows:
                rid = record.get("id")
                if rid is not None and str(rid) not in listed:
                    listed.add(str(rid))
                    out.append((str(rid), record))
            if next_link(payload) is not None and rows:
                page_no += 1
                continue
            if reported is not None and got < reported:
                return self._split_listing(lo, hi, out)
            return out

    def _split_listing(
        self, lo: datetime, hi: datetime, partial: list[tuple[str, Record]]
    ) -> list[tuple[str, Record]]:
        if hi - lo <= ONE_MS:
            self.run.log.warning(
                "Kustomer search %s: more records share updatedAt %s than an id listing pages "
                "through; %d of them were listed",
                self.run.ctx,
                iso_ms(lo),
                len(partial),
            )
            return partial
        mid = midpoint(lo, hi)
        return [*self.list_ids(lo, mid), *self.list_ids(mid, hi)]

    def reconcile(self) -> Iterator[list[Record]]:
        """Prove the run's window complete (see module doc), yielding what had to be re-read;
        fills the window's `reconciliation` and fails the window for an id it cannot read."""
        run = self.run
        w, rec = run.window, run.window.reconciliation
        have = len(run.latest)
        reread = len(run.seen) - have  # versions beyond one per id: records that moved
        rec.count_after = self.count(w.start, w.end)
        if counts_prove_complete(
            count_after=rec.count_after,
            reported_total=w.reported_total,
            distinct_ids=have,
            versions=len(run.seen),
            verify=w.verify,
        ):
            rec.verified_by = "counts"
            return
        listing = self.list_ids(w.start, w.end)
        rec.ids_listed = len(listing)
        rec.verified_by = "ids"
        listed = {rid for rid, _ in listing}
        missing = [i for i, (rid, _) in enumerate(listing) if rid not in run.latest]
        before = w.records
        # A server that ignores idsOnly sends whole records: those need no second request.
        whole = [listing[i][1] for i in missing]
        fresh = run.fresh([r for r in whole if parse_time(attr(r, "updatedAt"))])
        if fresh:
            yield fresh
        still = [i for i in missing if listing[i][0] not in run.latest]
        ids = [rid for rid, _ in listing]
        ranges = ranges_around(ids, still, run.latest, w.start, w.end)
        for lo, hi in ranges:
            yield from run.cursor(Query("updated", lo, hi))
        lost = [listing[i][0] for i in still if listing[i][0] not in run.latest]
        if lost and ranges:
            # Neighbours may have moved since they were read: re-read to the window's end once.
            yield from run.cursor(Query("updated", min(lo for lo, _ in ranges), w.end))
            lost = [rid for rid in lost if rid not in run.latest]
        if lost:
            # Still listed now? Then Kustomer holds records the cursor cannot reach.
            again = {rid for rid, _ in self.list_ids(w.start, w.end)}
            lost = [rid for rid in lost if rid in again]
        rec.refetched = w.records - before
        rec.changed_during_run = len(set(run.latest) - listed) + len(missing) - len(lost) + reread
        rec.unaccounted = len(lost)
        if lost:
            raise run.incomplete(
                f"{len(lost)} record(s) Kustomer lists for the window could not be read, e.g. "
                f"{', '.join(sorted(lost)[:3])}"
            )
        if rec.refetched or rec.changed_during_run:
            run.log.info(
                "Kustomer search %s [%s, %s): %d records changed while the run paged; %d re-read "
                "after the id check",
                run.ctx,
                iso_ms(w.start),
                iso_ms(w.end),
                rec.changed_during_run,
                rec.refetched,
            )


__all__ = ["Reconciler", "Reconciliation", "counts_prove_complete", "ranges_around"]
