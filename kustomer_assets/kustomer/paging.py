"""Paging a list endpoint (`GET /v1/users`, `/v1/tags` ...) over the transport.

Lists are paged the way the API notes document: ask for the largest page size (fewer pages cost
less of the shared budget), then follow `links.next` until it is null. The links are the
server's text, so each is resolved against our API root and never followed to another host,
and a link already visited ends the listing instead of looping. Some endpoints omit `links`
altogether; then `meta.page` / `meta.totalPages` drive the paging. A listing that comes up short
of `meta.total` (the server stopped paging, or refused a deep page with 400/404) keeps what it
read and says so in the log: lists have no time windows to split, unlike search.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .errors import KustomerResponseError
from .jsonapi import Record, int_or_none, meta, next_link, records, total
from .transport import Transport

MAX_LIST_PAGES = 100_000
"""A bound on one listing, for a server whose next links never end."""


def iter_list(
    transport: Transport,
    path: str,
    *,
    page_size: int | None = None,
    role: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Iterator[list[Record]]:
    """Pages of a list endpoint, following links.next; duplicates across pages are dropped.

    `page_size` defaults to the settings' `list_page_size`; `params` are sent with the first
    page (and with pages counted from `meta` when there are no links)."""
    size = page_size or transport.settings.list_page_size
    first_query: dict[str, Any] = dict(params or {})
    first_query.setdefault("page", 1)
    first_query.setdefault("pageSize", size)
    query: dict[str, Any] | None = first_query
    current = transport.local_path(path)
    seen_ids: set[tuple[Any, Any]] = set()
    visited: set[str] = set()
    received = 0
    reported: int | None = None
    page_no = int_or_none(first_query.get("page")) or 1
    for _ in range(MAX_LIST_PAGES):
        try:
            payload = transport.get(current, query, role=role, expect="list")
        except KustomerResponseError as exc:
            if received and exc.status in (400, 404):
                transport.log.warning(
                    "Kustomer %s stopped paging with %s after %d records",
                    transport.plain(current),
                    exc.status,
                    received,
                )
                break
            raise
        transport.stats.add(pages=1)
        data = records(payload)
        if reported is None:
            reported = total(payload)
        fresh = []
        for record in data:
            rid = record.get("id")
            if rid is not None:
                key = (record.get("type"), rid)
                if key in seen_ids:
                    continue
                seen_ids.add(key)
            fresh.append(record)
        received += len(fresh)
        if fresh:
            yield fresh
        nxt = next_link(payload)
        if nxt is not None and data:
            local = transport.local_path(nxt, current=current)
            if local in visited:
                break
            visited.add(local)
            current, query = local, None
            continue
        if "links" not in payload and data:
            # Some endpoints omit links altogether: fall back to meta's page counters.
            info = meta(payload)
            page = int_or_none(info.get("page")) or page_no
            total_pages = int_or_none(info.get("totalPages"))
            if total_pages is not None and page < total_pages:
                page_no = page + 1
                base = dict(params or {})
                base["page"] = page_no
                base.setdefault("pageSize", size)
                current, query = transport.local_path(path), base
                continue
        break
    if reported is not None and received < reported:
        transport.log.warning(
            "Kustomer %s listed %d of %d reported records (the server stopped paging)",
            transport.plain(path),
            received,
            reported,
        )


__all__ = ["MAX_LIST_PAGES", "iter_list"]
