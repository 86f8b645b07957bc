"""List and by-id endpoints, and the page-number paging every list and search shares.

Page sizes are capped per endpoint and paging meets a deep-paging wall (`search_max_pages` or
`search_max_results`): a missing `links.next`, or a 400/404 on deep pages.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from .base import EmulatorBase
from .responses import _error, _json, _Response


class ListsMixin(EmulatorBase):
    """Paging and the list / by-id / children / metadata handlers of `Emulator` (mixed into it)."""

    def _page_params(self, query: dict[str, str], size_key: str, jsonapi: bool) -> tuple[int, int]:
        sizes = self.config.max_page_size
        cap = int(sizes.get(size_key, sizes.get("default", 100)))
        try:
            page = int(query.get("page", "1") or "1")
            size = int(query.get("pageSize", "") or min(cap, 100))
        except ValueError as exc:
            raise _error(400, "invalid_parameter", "page and pageSize must be integers",
                         jsonapi=jsonapi) from exc  # fmt: skip
        if page < 1 or size < 1:
            raise _error(
                400, "invalid_parameter", "page and pageSize must be >= 1", jsonapi=jsonapi
            )
        return page, min(size, cap)

    def _max_pages(self, size: int) -> int:
        if self.config.search_max_results:
            return max(1, self.config.search_max_results // size)
        return max(1, self.config.search_max_pages)

    def _paged(
        self,
        path: str,
        query: dict[str, str],
        items: list[dict[str, Any]],
        size_key: str,
        *,
        jsonapi: bool = False,
        ids_only: bool = False,
    ) -> _Response:
        page, size = self._page_params(query, size_key, jsonapi)
        total = len(items)
        total_pages = math.ceil(total / size)
        max_pages = self._max_pages(size)
        mode = self.config.deep_paging_refusal
        if page > max_pages:
            self._count("deep_paging_refusals")
            if mode in ("404", "400"):
                code = "not_found" if mode == "404" else "invalid_page"
                raise _error(
                    int(mode),
                    code,
                    f"Page {page} is beyond the maximum of {max_pages} pages; narrow the query",
                    jsonapi=jsonapi,
                )
            chunk: list[dict[str, Any]] = []
        else:
            chunk = items[(page - 1) * size : page * size]
        extra = {k: v for k, v in query.items() if k not in ("page", "pageSize")}

        def link(n: int) -> str:
            return f"{path}?" + urlencode({"page": n, "pageSize": size, **extra})

        has_next = page < total_pages
        if has_next and page >= max_pages and mode == "missing_next":
            has_next = False  # the silent wall: meta.total says more, links.next says no
            if page == max_pages:
                self._count("deep_paging_refusals")
        meta: dict[str, Any] = {
            "page": page,
            "pageSize": size,
            "total": total,
            "totalPages": total_pages,
        }
        if jsonapi:
            meta.update(timed_out=False, aggregations={})
        data = [{"type": r["type"], "id": r["id"]} for r in chunk] if ids_only else chunk
        return _json(
            200,
            {
                "data": data,
                "links": {
                    "self": link(page),
                    "first": link(1),
                    "prev": link(page - 1) if page > 1 else None,
                    "next": link(page + 1) if has_next else None,
                    "last": link(max(total_pages, 1)),
                },
                "meta": meta,
            },
        )

    # -- handlers --------------------------------------------------------------------------

    def _h_current_user(self, **_: Any) -> _Response:
        user = self.dataset.get("user", self.dataset.current_user_id)
        return _json(200, {"data": user})

    def _list_handler(self, type_: str, size_key: str) -> Callable[..., _Response]:
        def handler(*, path: str, query: dict[str, str], **_: Any) -> _Response:
            items = sorted(
                self.dataset.all(type_),
                key=lambda r: (r["attributes"].get("createdAt") or "", r["id"]),
            )
            return self._paged(path, query, items, size_key)

        return handler

    def _get_handler(self, type_: str) -> Callable[..., _Response]:
        def handler(*, id: str, **_: Any) -> _Response:
            res = self.dataset.get(type_, id)
            if res is None and type_ == "customer" and self.config.merged_lookup == "survivor":
                survivor = self.dataset.resolve_merged(id)  # answered under another id
                res = self.dataset.get("customer", survivor) if survivor else None
            if res is None:
                raise _error(404, "not_found", f"{type_} {id} not found", jsonapi=False)
            return _json(200, {"data": res})

        return handler

    def _children_handler(self, type_: str) -> Callable[..., _Response]:
        def handler(*, path: str, query: dict[str, str], id: str, **_: Any) -> _Response:
            if self.dataset.get("conversation", id) is None:
                raise _error(404, "not_found", f"conversation {id} not found", jsonapi=False)
            items = sorted(
                self.dataset.children_of(type_, id),
                key=lambda r: (r["attributes"].get("createdAt") or "", r["id"]),
            )
            return self._paged(path, query, items, f"{type_}s")

        return handler

    def _h_metadata(self, *, resource: str, **_: Any) -> _Response:
        meta = self.dataset.metadata.get(resource)
        if meta is None:
            raise _error(404, "not_found", f"No metadata for {resource!r}", jsonapi=False)
        return _json(200, {"data": meta})
