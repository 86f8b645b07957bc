"""Fetch one entity's records for a time window, in pages, however its source is shaped.

Search-backed entities ask Kustomer only for `[start, end)`; list-backed ones (users, teams ...
whose endpoints cannot filter by time) are read whole and filtered here, once per run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from kustomer_assets.entities import EntitySpec, ListSource, SearchSource
from kustomer_assets.kustomer import KustomerClient
from kustomer_assets.records import parse_timestamp


@dataclass
class WindowFetch:
    """Pages of one entity for `[start, end)`; `reported_total` is what the API said it holds
    (None for list endpoints, whose totals cover all time)."""

    spec: EntitySpec
    client: KustomerClient
    start: datetime
    end: datetime
    reported_total: int | None = None
    records: int = 0

    def __iter__(self) -> Iterator[list[dict]]:
        source = self.spec.source
        if isinstance(source, SearchSource):
            window = self.client.search_window(
                source.query_context, self.start, self.end, role=self.spec.role
            )
            for page in window:
                self.records += len(page)
                yield page
            self.reported_total = window.reported_total
        elif isinstance(source, ListSource):
            for page in self.client.iter_list(
                source.path, page_size=source.page_size, role=self.spec.role
            ):
                in_window = [r for r in page if self._in_window(r)]
                self.records += len(in_window)
                yield in_window
        else:  # pragma: no cover - the Source union is closed
            raise TypeError(f"unknown source {source!r}")

    def _in_window(self, resource: dict) -> bool:
        updated_at = parse_timestamp((resource.get("attributes") or {}).get("updatedAt"))
        return updated_at is not None and self.start <= updated_at < self.end
