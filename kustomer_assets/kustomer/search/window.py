"""`SearchWindow`: the records of one query context updated in [start, end), each version once.

The window is what callers hold; reading it is the cursor's job (`cursor`) and proving it
complete the id check's (`completeness`). Every iteration runs the search from scratch, so a
window can be read again after a failure without carrying stale state.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from kustomer_assets.timestamps import iso_ms

from ..jsonapi import Record, as_utc
from ..settings import VERIFY_MODES
from .completeness import Reconciler, Reconciliation
from .cursor import CursorRun
from .plan import Query

if TYPE_CHECKING:
    from .endpoint import SearchEndpoint


class SearchWindow:
    """Iterable of pages (lists of records new to this iteration) updated in [start, end).

    Counters are filled in while iterating, `reconciliation` at the end of it; each iteration
    runs the search from scratch."""

    def __init__(
        self,
        endpoint: SearchEndpoint,
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
        self.start = as_utc(start)
        self.end = as_utc(end)
        self.role = role
        self.include_deleted = include_deleted
        self.verify = verify
        self.reported_total: int | None = None
        self.records = 0
        self.queries = 0
        self.reconciliation = Reconciliation()
        self._endpoint = endpoint

    def __iter__(self) -> Iterator[list[Record]]:
        self.reported_total = None
        self.records = 0
        self.queries = 0
        self.reconciliation = Reconciliation()
        return self._pages(CursorRun(self._endpoint, self))

    def _pages(self, run: CursorRun) -> Iterator[list[Record]]:
        if self.end <= self.start:
            self.reported_total = 0
            return
        yield from run.cursor(Query("updated", self.start, self.end), first=True)
        yield from Reconciler(run).reconcile()

    def first_page(self) -> list[Record]:
        """Only the oldest page of the window (one request, no id check): what a sensor needs
        to learn which days changed without spending the search budget on the rest."""
        run = CursorRun(self._endpoint, self)
        page = run.fetch(Query("updated", self.start, self.end))
        self.reported_total = page.total
        return run.fresh(page.records)

    def count(self) -> int | None:
        """How many records Kustomer holds for the window now (one request, page size 1), or
        None when it reports no total: what a listing is sized by before it pages, so that
        no listing runs into the deep-paging wall."""
        return Reconciler(CursorRun(self._endpoint, self)).count(self.start, self.end)

    def list_ids(self) -> list[str]:
        """Ids Kustomer lists for the window now (`idsOnly` pages, split at the deep-paging
        wall): the cheap listing a reconciliation of hard deletes compares a table with."""
        reconciler = Reconciler(CursorRun(self._endpoint, self))
        return [rid for rid, _ in reconciler.list_ids(self.start, self.end)]

    def __repr__(self) -> str:
        return (
            f"SearchWindow({self.query_context!r}, {iso_ms(self.start)}, {iso_ms(self.end)}, "
            f"reported_total={self.reported_total}, records={self.records})"
        )


__all__ = ["SearchWindow"]
