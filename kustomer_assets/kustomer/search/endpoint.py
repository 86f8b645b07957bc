"""Search pages over the transport, and the page size the server really serves.

A search window needs more than one request from its endpoint: it sizes its query budget and
its "full page" test by how many records a page holds, and a server may serve fewer than asked
for (a cap below 500). That page size is learned here, once per client, and every window of
the client uses it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .body import SEARCH_PATH

if TYPE_CHECKING:
    from ..stats import ClientStats
    from ..transport import Transport


class SearchEndpoint:
    """`POST /v1/customers/search`, one page at a time; thread-safe like the transport."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._learned_page: int | None = None

    @property
    def stats(self) -> ClientStats:
        """The client's counters: a window adds its narrowings to them."""
        return self._transport.stats

    @property
    def log(self) -> logging.Logger:
        """The client's logger, so a window's notes appear in the run's log."""
        return self._transport.log

    def page(
        self,
        body: dict[str, Any],
        *,
        page: int = 1,
        page_size: int | None = None,
        path: str | None = None,
        role: str | None = None,
        ids_only: bool = False,
    ) -> dict[str, Any]:
        """One page of a search: page N of `body`, or the page a `links.next` path names."""
        params: dict[str, Any] | None = None
        if path is None:
            requested = page_size or self._transport.settings.search_page_size
            params = {"page": page, "pageSize": requested}
            if ids_only:
                params["idsOnly"] = "true"
        payload = self._transport.post(path or SEARCH_PATH, body, params, role=role, expect="list")
        self.stats.add(pages=1)
        return payload

    def page_hint(self) -> int:
        """The page size search really serves: what we ask for, or less if the server caps it."""
        learned = self._learned_page
        requested = self._transport.settings.search_page_size
        return min(requested, learned) if learned else requested

    def learn_page_size(self, size: int) -> None:
        """Remember a server's page cap, seen as a page shorter than asked while more remain."""
        if size > 0 and (self._learned_page is None or size < self._learned_page):
            self._learned_page = size

    def local_path(self, link: str) -> str:
        """A next link as a path under our API root (never another host)."""
        return self._transport.local_path(link)


__all__ = ["SearchEndpoint"]
