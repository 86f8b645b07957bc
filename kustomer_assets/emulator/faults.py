"""Injected faults: 5xx answers, HTML bodies, 429s, truncated bodies, dropped connections and
slow answers, drawn at `fault_rate` from a seeded RNG with weights per kind.
"""

from __future__ import annotations

import time

from .config import FAULT_KINDS
from .rate_limits import RateLimitsMixin
from .responses import _json, _Response
from .routing_table import _ROUTES


class FaultsMixin(RateLimitsMixin):
    """Fault injection of `Emulator` (mixed into it)."""

    def set_faults(
        self, fault_rate: float, *, slow_seconds: float | None = None, **kinds: float
    ) -> None:
        """Change fault injection at runtime; kinds (e.g. **{"503_html": 1}) replace the weights."""
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        with self._fault_lock:
            self.config.fault_rate = float(fault_rate)
            if kinds:
                self.config.fault_kinds = {k: float(kinds.get(k, 0)) for k in FAULT_KINDS}
            if slow_seconds is not None:
                self.config.slow_seconds = float(slow_seconds)

    def fail_route(self, kind: str, times: int, fault: str = "500") -> None:
        """Answer the next `times` requests to route `kind` (e.g. `get_satisfaction_response`)
        with `fault`, whatever `fault_rate` says: a failure aimed at one phase of a run."""
        if fault not in FAULT_KINDS or fault in ("slow", "truncated"):
            raise ValueError(f"fault {fault!r} cannot be aimed at a route")
        kinds = sorted({route[2] for route in _ROUTES})
        if kind not in kinds:
            raise ValueError(f"no route kind {kind!r}; known: {kinds}")
        with self._fault_lock:
            self._route_failures[kind] = (fault, times)

    def _aimed_fault(self, kind: str) -> str | None:
        with self._fault_lock:
            fault, left = self._route_failures.get(kind, ("", 0))
            if left <= 0:
                return None
            self._route_failures[kind] = (fault, left - 1)
            return fault

    def _pick_fault(self) -> str | None:
        with self._fault_lock:
            rate = self.config.fault_rate
            if rate <= 0 or self._fault_rng.random() >= rate:
                return None
            kinds = [(k, w) for k, w in self.config.fault_kinds.items() if w > 0]
            if not kinds:
                return None
            names, weights = zip(*kinds, strict=True)
            return self._fault_rng.choices(names, weights)[0]

    def _fault_response(self, fault: str) -> _Response:
        if fault == "drop":
            return _Response(0, action="drop")
        if fault == "500":
            resp = _json(500, {"code": "internal_error", "message": "Internal Server Error"})
        elif fault == "502":
            html = (
                b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
            )
            resp = _Response(502, html, content_type="text/html")
        elif fault == "503_html":
            html = (
                b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
                b"<body><h1>Service Unavailable</h1><p>Please try again later.</p></body></html>"
            )
            resp = _Response(503, html, content_type="text/html; charset=utf-8")
        else:  # "429": a burst from another key in the org exhausted the shared budget
            resp = _json(429, {"code": "rate_limited", "message": "Too Many Requests"})
            now = time.time()
            resp.headers.update(self._rate_headers(self._org.limit, 0, now + 1, now))
            if self.config.send_retry_after:
                resp.headers["Retry-After"] = "1"
        if "x-ratelimit-limit" not in resp.headers:
            now = time.time()
            remaining, reset = self._org.peek(now)
            resp.headers.update(self._rate_headers(self._org.limit, remaining, reset, now))
        self._count(f"responses.{resp.status}")
        return resp
