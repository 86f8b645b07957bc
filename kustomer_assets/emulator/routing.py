"""Request processing: admin or API, injected faults, then authentication, rate limits, role
checks and the matching endpoint's handler.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .admin import AdminMixin
from .auth import READ_ROLES, AuthMixin
from .responses import _error, _HttpError, _json, _Response
from .routing_table import _ROUTES, _Route
from .search_handler import SearchMixin


class RoutingMixin(AuthMixin, AdminMixin, SearchMixin):
    """Request dispatch of `Emulator` (mixed into it)."""

    def handle(
        self, method: str, target: str, headers: Any, body: bytes
    ) -> tuple[_Response, float]:
        """Returns the response and how long to sleep before sending it (slow fault)."""
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if path.startswith("/__admin/"):
            self._count("admin")
            try:
                return self._admin(method, path, query, body), 0.0
            except _HttpError as exc:
                return _json(exc.status, exc.payload), 0.0
        if not path.startswith("/v1/"):
            return _json(404, {"code": "not_found", "message": f"No route {path}"}), 0.0
        self._count("requests")
        delay = 0.0
        fault = self._pick_fault()
        if fault is not None:
            self._count("faults")
            self._count(f"faults.{fault}")
            if fault == "slow":
                delay = self.config.slow_seconds
            elif fault not in ("truncated",):
                return self._fault_response(fault), 0.0
        resp = self._api(method, path, query, headers, body)
        self._count(f"responses.{resp.status}")
        if fault == "truncated":
            resp.action = "truncate"
        return resp, delay

    def _api(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> _Response:
        now = time.time()
        route, params = self._route(method, path)
        jsonapi = route is not None and route.search
        try:
            roles = self._authenticate(headers)
            if route is None:
                raise _error(404, "not_found", f"Cannot {method} {path}", jsonapi=False)
            self._count(f"requests.{route.kind}")
            aimed = self._aimed_fault(route.kind)
            if aimed is not None:
                self._count(f"faults.{aimed}")
                return self._fault_response(aimed)
            ok, remaining, reset = self._org.take(now)
            limit = self._org.limit
            if ok and route.search:
                ok, remaining, reset = self._search.take(now)
                limit = self._search.limit
            rate = self._rate_headers(limit, remaining, reset, now)
            if not ok:
                self._count("rate_limited")
                limited = _error(429, "rate_limited", "Too Many Requests", jsonapi=jsonapi)
                resp = _json(429, limited.payload)
                resp.headers.update(rate)
                if self.config.send_retry_after:
                    resp.headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
                return resp
            self._authorize(roles, route, body)
            resp = route.handler(path=path, query=query, body=body, **params)
            resp.headers.update(rate)
            return resp
        except _HttpError as exc:
            resp = _json(exc.status, exc.payload)
            if exc.status == 401:
                self._count("auth_errors")
            remaining, reset = self._org.peek(now)
            resp.headers.update(self._rate_headers(self._org.limit, remaining, reset, now))
            return resp

    def _route(self, method: str, path: str) -> tuple[_Route | None, dict[str, str]]:
        for m, pattern, kind, entity in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None or m != method:
                continue
            params = match.groupdict()
            role = READ_ROLES.get(entity) if entity else None
            handler: Callable[..., _Response]
            if kind == "search":
                return _Route(kind, None, self._h_search, search=True), params
            if kind == "current_user":
                handler = self._h_current_user
            elif kind == "metadata":
                handler = self._h_metadata
            elif kind.startswith("list_"):
                handler = self._list_handler(entity, kind[len("list_") :])
            elif kind.startswith("get_"):
                handler = self._get_handler(entity)
            else:  # conversation_messages / conversation_notes
                handler = self._children_handler(entity)
            return _Route(kind, role, handler), params
        return None, {}
