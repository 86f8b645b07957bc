"""A small in-process Kustomer stand-in for httpx.MockTransport.

It is deliberately independent of the emulator package: the client must work against servers
we did not write, so the knobs here (page caps, refusal styles, missing totals, unsorted results,
absolute next links, faults) vary exactly the things the API notes leave uncertain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx

from kustomer_assets.kustomer import KustomerClient, KustomerSettings, roles

KEY = "sk-test-SECRETKEY-0123456789abcdef"
WINDOW_START = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(days=1)


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def make_id(ctx: str, n: int) -> str:
    return hashlib.sha1(f"{ctx}-{n}".encode()).hexdigest()[:24]


def resource(ctx: str, n: int, updated: datetime, created: datetime) -> dict[str, Any]:
    rid = make_id(ctx, n)
    return {
        "type": ctx,
        "id": rid,
        "attributes": {"updatedAt": iso(updated), "createdAt": iso(created), "n": n},
        "links": {"self": f"/v1/{ctx}s/{rid}"},
    }


def window_records(
    ctx: str = "conversation",
    *,
    count: int = 1250,
    tie: int = 400,
    tie_at: datetime | None = None,
    same_created: bool = False,
    outside: int = 40,
    seed: int = 3,
) -> list[dict[str, Any]]:
    """`count` records in [WINDOW_START, WINDOW_END), `tie` of them sharing one updatedAt."""
    rng = random.Random(seed)
    tie_at = tie_at or WINDOW_START + timedelta(hours=10)
    out = []
    day_ms = int((WINDOW_END - WINDOW_START).total_seconds() * 1000)
    for n in range(count):
        if n < tie:
            updated = tie_at
            created = (
                tie_at - timedelta(days=3)
                if same_created
                else tie_at - timedelta(milliseconds=rng.randrange(1, 30 * 86_400_000))
            )
        else:
            # whole seconds, so small natural ties occur too
            updated = WINDOW_START + timedelta(seconds=rng.randrange(day_ms // 1000))
            created = updated - timedelta(milliseconds=rng.randrange(0, 5 * 86_400_000))
        out.append(resource(ctx, n, updated, created))
    for k in range(outside):  # neighbours that must never be returned for this window
        n = count + k
        before = WINDOW_START - timedelta(seconds=rng.randrange(1, 86_400))
        after = WINDOW_END + timedelta(seconds=rng.randrange(0, 86_400))
        when = before if k % 2 else after
        out.append(resource(ctx, n, when, when - timedelta(days=1)))
    return out


PATH_ROLES = {
    "/v1/users": roles.USER_READ,
    "/v1/teams": roles.TEAM_READ,
    "/v1/notes": roles.NOTE_READ,
    "/v1/tags": roles.TAG_READ,
    "/v1/brands": roles.BRAND_READ,
    "/v1/customers/search": roles.SEARCH_CREATE,  # refused with a body that names no role
}

Fault = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeKustomer:
    host: str = "acme.api.kustomerapp.com"
    key: str = KEY
    search: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing_roles: set[str] = field(default_factory=set)
    permission_status: int = 403
    auth_failure: dict[str, Any] | None = None  # body for 401 on every request (bad key/pod)
    max_page_size: int = 100
    page_cap: int | None = None
    refusal: str = "missing_next"  # or "404" / "400"
    omit_total: bool = False
    hide_page_size: bool = False
    unsorted: bool = False
    next_style: str = "relative"  # "absolute_other_host" / "absolute_same_host" / "query_only"
    total_bias: int = 0  # a server whose meta.total over-reports
    faults: list[Fault] = field(default_factory=list)
    fault_paths: tuple[str, ...] = ()  # faults only for these path prefixes (empty = all)
    rate_headers: Callable[[int], dict[str, str]] | None = None
    ids_only: str = "ignore"  # "honor" (type and id only) / "reject" (400) / "ignore"
    after_search: Callable[[FakeKustomer, dict[str, Any]], None] | None = None
    """Called after each search response is built: changes the data "between page requests"."""
    omit_from_pages: dict[str, int] = field(default_factory=dict)
    """id -> how many more data (not idsOnly) search responses leave it out: a flaky index."""
    requests: list[httpx.Request] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def count(self, path: str, method: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if r.url.path == path and (method is None or r.method == method)
        )

    # -- dispatch --------------------------------------------------------------------------
    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if self.faults and (not self.fault_paths or path.startswith(self.fault_paths)):
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            if isinstance(fault, httpx.Response):
                return fault
            return fault(request)
        response = self._handle(request)
        if self.rate_headers is not None:
            response.headers.update(self.rate_headers(len(self.requests)))
        return response

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return httpx.Response(401, json={"errors": [{"status": 401, "title": "Unauthorized"}]})
        if self.auth_failure is not None:
            return httpx.Response(401, json=self.auth_failure)
        if path == "/v1/users/current":
            return httpx.Response(200, json={"data": {"type": "user", "id": "u1"}})
        needed = PATH_ROLES.get(path)
        if needed in self.missing_roles:
            return httpx.Response(
                self.permission_status,
                json={"code": "forbidden", "message": "Missing permission for this resource"},
            )
        if path == "/v1/customers/search" and request.method == "POST":
            return self._search(request)
        if path in self.lists:
            return self._list(request, self.lists[path])
        if path in self.resources:
            return httpx.Response(200, json={"data": self.resources[path]})
        return httpx.Response(404, json={"code": "not_found", "message": f"No route {path}"})

    def _paging(self, request: httpx.Request) -> tuple[int, int]:
        qs = parse_qs(request.url.query.decode())
        page = int(qs.get("page", ["1"])[0])
        size = min(int(qs.get("pageSize", ["100"])[0]), self.max_page_size)
        return page, size

    def _next(self, path: str, page: int, size: int) -> str:
        rel = f"{path}?page={page + 1}&pageSize={size}"
        if self.next_style == "absolute_other_host":
            return f"https://evil.example.com{rel}"
        if self.next_style == "absolute_same_host":
            return f"https://{self.host}{rel}"
        if self.next_style == "query_only":
            return f"?page={page + 1}&pageSize={size}"
        return rel

    def _envelope(
        self, request: httpx.Request, rows: list[dict[str, Any]], *, capped: bool
    ) -> httpx.Response:
        page, size = self._paging(request)
        total = len(rows)
        if capped and self.page_cap is not None and page > self.page_cap:
            if self.refusal in ("404", "400"):
                return httpx.Response(
                    int(self.refusal),
                    json={"errors": [{"status": int(self.refusal), "detail": "page too deep"}]},
                )
            return httpx.Response(200, json={"data": [], "links": {"next": None}, "meta": {}})
        data = rows[(page - 1) * size : page * size]
        more = page * size < total
        if capped and self.page_cap is not None and page >= self.page_cap:
            more = more and self.refusal != "missing_next"
        meta: dict[str, Any] = {"page": page}
        if not self.hide_page_size:
            meta["pageSize"] = size
        if not self.omit_total:
            meta["total"] = total + self.total_bias
        links = {"self": request.url.path, "next": self._next(request.url.path, page, size)}
        if not more:
            links["next"] = None
        return httpx.Response(200, json={"data": data, "links": links, "meta": meta})

    def _list(self, request: httpx.Request, rows: list[dict[str, Any]]) -> httpx.Response:
        return self._envelope(request, rows, capped=False)

    def _search(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        ids_only = parse_qs(request.url.query.decode()).get("idsOnly") == ["true"]
        if ids_only and self.ids_only == "reject":
            return httpx.Response(400, json={"errors": [{"status": 400, "detail": "idsOnly"}]})
        response = self._search_rows(request, body, ids_only)
        if self.after_search is not None:
            self.after_search(self, body)
        return response

    def _search_rows(
        self, request: httpx.Request, body: dict[str, Any], ids_only: bool
    ) -> httpx.Response:
        ctx = body["queryContext"]
        rows = list(self.search.get(ctx, []))
        for criterion in body.get("and", []):
            ((name, ops),) = criterion.items()
            attr = name.removeprefix(f"{ctx}_")
            attr_name = {"updated_at": "updatedAt", "created_at": "createdAt"}[attr]
            for op, value in ops.items():
                bound = parse_iso(value)
                test = {
                    "gte": lambda v, b=bound: v >= b,
                    "gt": lambda v, b=bound: v > b,
                    "lt": lambda v, b=bound: v < b,
                    "lte": lambda v, b=bound: v <= b,
                }[op]
                rows = [r for r in rows if test(parse_iso(r["attributes"][attr_name]))]
        if self.unsorted:
            rows.sort(key=lambda r: hashlib.md5(r["id"].encode()).hexdigest())
        else:
            for sort in reversed(body.get("sort", [])):
                ((name, direction),) = sort.items()
                attr = {"updated_at": "updatedAt", "created_at": "createdAt"}[
                    name.removeprefix(f"{ctx}_")
                ]
                rows.sort(key=lambda r: r["id"])
                rows.sort(key=lambda r, a=attr: r["attributes"][a], reverse=direction == "desc")
        if not ids_only and self.omit_from_pages:
            # Leave a record out of the page it would be served on, as a lagging index does.
            page, size = self._paging(request)
            served = {r["id"] for r in rows[(page - 1) * size : page * size]}
            for rid, n in self.omit_from_pages.items():
                if n > 0 and rid in served:
                    self.omit_from_pages[rid] -= 1
                    rows = [r for r in rows if r["id"] != rid]
        if ids_only and self.ids_only == "honor":
            rows = [{"type": r["type"], "id": r["id"]} for r in rows]
        return self._envelope(request, rows, capped=True)


class FakeClock:
    """monotonic/time/sleep that advance together, so waits are instant but measurable."""

    def __init__(self, wall: float = 1_800_000_000.0) -> None:
        self.now = 0.0
        self.wall0 = wall
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall0 + self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


def make_client(
    server: FakeKustomer,
    clock: FakeClock | None = None,
    logger: logging.Logger | None = None,
    **overrides: Any,
) -> KustomerClient:
    """A client on the fake server whose sleeps only move the fake clock."""
    clock = clock or FakeClock()
    values: dict[str, Any] = {"subdomain": "acme", "api_key": KEY, "backoff_base_seconds": 0.1}
    values.update(overrides)
    return KustomerClient(
        KustomerSettings(**values),
        transport=server.transport(),
        sleep=clock.sleep,
        clock=clock.monotonic,
        wall_clock=clock.time,
        logger=logger,
    )
