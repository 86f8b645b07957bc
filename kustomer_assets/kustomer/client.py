"""KustomerClient: the one object callers hold to read Kustomer, composed of three jobs.

- `transport`: one pooled HTTP connection that sends one request politely (rate budget,
  retries, 429s, auth errors) and turns answers into errors that say what to do.
- `paging`: list endpoints, following `links.next` on our own host.
- `search`: search windows (cursor paging and the id check) on top of `SearchEndpoint`.

This module only wires them together behind the methods callers have always used, so that a
caller never needs to know which of the three a request goes through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx

from . import paging
from .auth import CURRENT_USER_PATH
from .budget import RateBudget
from .search import SEARCH_PATH, SearchEndpoint, SearchWindow
from .settings import KustomerSettings
from .stats import ClientStats
from .transport import USER_AGENT, Transport


class KustomerClient:
    """Thread-safe client for the read-only parts of the Kustomer REST API."""

    def __init__(
        self,
        settings: KustomerSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """`transport` replaces the network (tests pass an `httpx.MockTransport`); `sleep`,
        `clock` and `wall_clock` replace time, so waits can be tested without waiting."""
        self._transport = Transport(
            settings,
            http_transport=transport,
            sleep=sleep,
            logger=logger,
            clock=clock,
            wall_clock=wall_clock,
        )
        self._search = SearchEndpoint(self._transport)

    # -- what the parts share --------------------------------------------------------------
    @property
    def settings(self) -> KustomerSettings:
        """The validated settings this client was built with."""
        return self._transport.settings

    @property
    def log(self) -> logging.Logger:
        """Where the client says what it waits for and retries."""
        return self._transport.log

    @property
    def stats(self) -> ClientStats:
        """What this client has cost against the org's budget so far."""
        return self._transport.stats

    @property
    def budget(self) -> RateBudget:
        """The rate budget every request of this client draws on."""
        return self._transport.budget

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> KustomerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KustomerClient(api_root={self.settings.api_root!r})"

    # -- single requests -------------------------------------------------------------------
    def current_user(self) -> dict[str, Any]:
        """GET /v1/users/current: the cheapest way to prove the key works."""
        return self._transport.keys.current_user()

    def first_page(
        self, path: str, *, search_body: dict[str, Any] | None = None, role: str | None = None
    ) -> dict[str, Any]:
        """One page of one record (a GET list, or a search when `search_body` is given): the
        cheapest request that proves a role, as the key check needs."""
        params = {"page": 1, "pageSize": 1}
        if search_body is not None:
            return self._transport.post(path, search_body, params, role=role)
        return self._transport.get(path, params, role=role)

    def get_resource(self, path: str, *, role: str | None = None) -> dict[str, Any]:
        """GET one resource and return its `data` object."""
        return self._transport.get(path, role=role, expect="object")["data"]

    # -- lists -----------------------------------------------------------------------------
    def iter_list(
        self,
        path: str,
        *,
        page_size: int | None = None,
        role: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of a list endpoint, following links.next; duplicates across pages are dropped."""
        return paging.iter_list(
            self._transport, path, page_size=page_size, role=role, params=params
        )

    # -- search ----------------------------------------------------------------------------
    def search_window(
        self,
        query_context: str,
        start: datetime,
        end: datetime,
        *,
        role: str | None = None,
        include_deleted: bool = True,
    ) -> SearchWindow:
        """Records of `query_context` with updatedAt in [start, end), each (id, updatedAt) once,
        proven complete by ids at the end (see `search`)."""
        return SearchWindow(
            self._search,
            query_context,
            start,
            end,
            role=role,
            include_deleted=include_deleted,
            verify=self.settings.search_verify,
        )

    def search_page(
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
        return self._search.page(
            body, page=page, page_size=page_size, path=path, role=role, ids_only=ids_only
        )

    def search_page_hint(self) -> int:
        """The page size search really serves: what we ask for, or less if the server caps it."""
        return self._search.page_hint()

    def learn_search_page_size(self, size: int) -> None:
        """Remember a server's page cap, seen as a page shorter than asked while more remain."""
        self._search.learn_page_size(size)

    def local_path(self, link: str) -> str:
        """A next link as a path under our API root (never another host)."""
        return self._transport.local_path(link)

    def _announce_wait(self, seconds: float, budget: str) -> None:
        """Kept for callers of the old private name: see `Transport.announce_wait`."""
        self._transport.announce_wait(seconds, budget)


__all__ = [
    "CURRENT_USER_PATH",
    "SEARCH_PATH",
    "USER_AGENT",
    "ClientStats",
    "KustomerClient",
    "SearchWindow",
]
