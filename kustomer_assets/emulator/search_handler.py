"""`POST /v1/customers/search`: the body evaluated (`search.run_search`), cached per dataset
version and minute, paged, and followed by churn when configured.
"""

from __future__ import annotations

import json
from typing import Any

from .churn import ChurnMixin
from .responses import _error, _Response
from .search import SearchError, run_search


class SearchMixin(ChurnMixin):
    """The search endpoint of `Emulator` (mixed into it)."""

    def _h_search(self, *, path: str, query: dict[str, str], body: bytes, **_: Any) -> _Response:
        try:
            parsed = json.loads(body or b"null")
        except ValueError as exc:
            raise _error(
                400, "invalid_json", "Request body is not valid JSON", jsonapi=True
            ) from exc
        page, size = self._page_params(query, "search", True)  # validate before the work
        try:
            items = self._cached_search(parsed)
        except SearchError as exc:
            raise _error(400, "invalid_search", str(exc), jsonapi=True) from exc
        context = str(parsed.get("queryContext"))
        self._count(f"search.{context}")
        ids_only = str(query.get("idsOnly", "")).lower() == "true"
        resp = self._paged(path, query, items, "search", jsonapi=True, ids_only=ids_only)
        self._churn_after_page(context, items, page, size)
        return resp

    def _cached_search(self, body: Any) -> list[dict[str, Any]]:
        """Paging a query re-runs it per page; cache by (body, dataset version, minute)."""
        key = (
            json.dumps(body, sort_keys=True, default=str),
            self.dataset.version,
            self.dataset.clock_ms() // 60_000,
        )
        with self._cache_lock:
            hit = self._search_cache.get(key)
            if hit is not None:
                self._search_cache.move_to_end(key)
                return hit
        items = run_search(self.dataset, body)
        with self._cache_lock:
            self._search_cache[key] = items
            while len(self._search_cache) > 64:
                self._search_cache.popitem(last=False)
        return items
