"""A local HTTP server that behaves like the Kustomer REST API, hostile parts included.

Besides answering the endpoints a read-only connector uses, it reproduces what makes a real
extraction hard: capped page sizes, a deep-paging wall (missing `links.next`, or 400/404 on deep
pages), role-scoped keys, expired and wrong-pod keys, fixed-window org and search rate limits,
and injected faults (5xx, HTML bodies, 429s, truncated bodies, dropped connections, slow answers).
It can also make the org live: records churn between search page requests, are hard-deleted or
merged, drift to values of another type, another app spends the budget, the server restarts.
Stdlib only, so it can run anywhere the connector's tests run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import signal
import socket
import threading
import time
import traceback
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from random import Random
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from kustomer_assets import loopback_http

from .dataset import ENTITY_TYPES, Dataset, generate_dataset, is_deleted
from .search import QUERY_CONTEXTS, SearchError, run_search
from .webhooks import DEFAULT_HEADER as WEBHOOK_HEADER
from .webhooks import WebhookSender

SEARCH_ROLES: tuple[str, ...] = (
    "org.permission.search.create",
    "org.permission.search.update",
    "org.permission.search_global.create",
    "org.permission.search_preview.create",
)
READ_ROLES: dict[str, str] = {
    "conversation": "org.permission.conversation.read",
    "message": "org.permission.message.read",
    "customer": "org.permission.customer.read",
    "note": "org.permission.note.read",
    "kobject": "org.permission.klass.read",
    "klass": "org.permission.klass.read",
    "company": "org.permission.company.read",
    "user": "org.permission.user.read",
    "team": "org.permission.team.read",
    "tag": "org.permission.tag.read",
    "brand": "org.permission.brand.read",
    "satisfaction": "org.permission.satisfaction.read",
    "satisfaction_response": "org.permission.satisfaction.read",
    "metadata": "org.permission.metadata.read",
}
# Every read role but no search role: the key a connector must diagnose, not crash on.
NO_SEARCH_KEY = "emulator-key-no-search"
NO_SEARCH_ROLES: frozenset[str] = frozenset(READ_ROLES.values())
MERGED_LOOKUP_MODES: tuple[str, ...] = ("survivor", "404")
FAULT_KINDS: tuple[str, ...] = ("500", "502", "503_html", "429", "truncated", "drop", "slow")
DEEP_PAGING_MODES: tuple[str, ...] = ("missing_next", "404", "400")
WRONG_POD_MESSAGE = "Auth token associated with pod prod2 but request is being handled by prod1"


def _default_fault_kinds() -> dict[str, float]:
    return {"500": 1, "502": 1, "503_html": 1, "429": 1, "truncated": 1, "drop": 1, "slow": 0}


def _default_api_keys() -> dict[str, frozenset[str] | None]:
    return {"emulator-key": None, NO_SEARCH_KEY: NO_SEARCH_ROLES}


ChurnSpec = int | dict[str, int]


def normalize_churn(churn: Any) -> dict[str, dict[str, int]]:
    """{"conversation": 2} or {"conversation": {"change": 2, "create": 1}} -> the second form.

    Raises ValueError on anything else, so a typo in a test fails loudly instead of churning
    nothing.
    """
    if not isinstance(churn, dict):
        raise ValueError("churn must be an object of queryContext -> n or {change, create}")
    out: dict[str, dict[str, int]] = {}
    for ctx, spec in churn.items():
        if ctx not in QUERY_CONTEXTS:
            raise ValueError(f"churn: unknown queryContext {ctx!r}; known: {QUERY_CONTEXTS}")
        if isinstance(spec, bool):
            raise ValueError(f"churn[{ctx!r}] must be an int or {{change, create}}")
        if isinstance(spec, int):
            spec = {"change": spec}
        if not isinstance(spec, dict) or set(spec) - {"change", "create"}:
            raise ValueError(f"churn[{ctx!r}] must be an int or {{change, create}}")
        parsed = {}
        for k in ("change", "create"):
            v = spec.get(k, 0)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"churn[{ctx!r}][{k!r}] must be a non-negative int")
            parsed[k] = v
        if parsed["change"] or parsed["create"]:
            out[ctx] = parsed
    return out


@dataclass
class EmulatorConfig:
    seed: int = 7
    days: int = 30  # history spans `days` days back from `now`
    now: datetime | None = None  # default: utcnow truncated to ms
    scale: float = 1.0  # scale 1 ~ 60 conversations/day, ~5 messages each
    # token -> roles; None = every role. NO_SEARCH_KEY has every read role but no search role.
    api_keys: dict[str, frozenset[str] | None] = field(default_factory=_default_api_keys)
    expired_keys: set[str] = field(default_factory=set)
    wrong_pod_keys: set[str] = field(default_factory=set)
    max_page_size: dict[str, int] = field(
        default_factory=lambda: {"search": 500, "users": 500, "teams": 500, "default": 100}
    )
    search_max_pages: int = 100  # deep-paging wall, in pages (applies to lists too)
    search_max_results: int | None = None  # when set, the wall is this many results instead
    deep_paging_refusal: str = "missing_next"  # or "404" / "400"
    permission_error_status: int = 403  # or 401, as older reference pages describe
    org_rate_limit: int = 1000
    search_rate_limit: int = 100
    rate_window_seconds: float = 60.0
    reset_header_mode: str = "epoch"  # or "seconds" (seconds until the window resets)
    send_retry_after: bool = True
    fault_rate: float = 0.0
    fault_kinds: dict[str, float] = field(default_factory=_default_fault_kinds)
    slow_seconds: float = 2.0
    fault_seed: int = 1
    # queryContext -> records to change (int) or {"change": n, "create": m} after every search
    # page served for that context: the org moving while a client pages.
    churn: dict[str, ChurnSpec] = field(default_factory=dict)
    merged_lookup: str = "survivor"  # GET /v1/customers/{merged loser}: survivor's record or 404
    # Outbound webhooks: mutations POST Kustomer Events here (conversation, customer, message,
    # team, user), the secret in `webhook_header`; POST /__admin/webhooks changes it at runtime.
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_header: str = WEBHOOK_HEADER
    webhook_attempts: int = 6  # Kustomer: ~10 over ~80 min; here 0.25 s doubling, ~8 s in all
    webhook_backoff_seconds: float = 0.25

    def validate(self) -> None:
        if self.merged_lookup not in MERGED_LOOKUP_MODES:
            raise ValueError(f"merged_lookup must be one of {MERGED_LOOKUP_MODES}")
        normalize_churn(self.churn)
        if self.deep_paging_refusal not in DEEP_PAGING_MODES:
            raise ValueError(f"deep_paging_refusal must be one of {DEEP_PAGING_MODES}")
        if self.permission_error_status not in (401, 403):
            raise ValueError("permission_error_status must be 401 or 403")
        if self.reset_header_mode not in ("epoch", "seconds"):
            raise ValueError("reset_header_mode must be 'epoch' or 'seconds'")
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")


# ----------------------------------------------------------------------------- plumbing


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"
    action: str = "normal"  # "normal" | "truncate" | "drop"


class _HttpError(Exception):
    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload


def _json(status: int, payload: Any) -> _Response:
    return _Response(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def _error(
    status: int, code: str, message: str, *, jsonapi: bool, meta: dict[str, Any] | None = None
) -> _HttpError:
    """Search answers JSON:API `errors`; most other endpoints answer {code, message, meta}."""
    if jsonapi:
        err: dict[str, Any] = {
            "status": status,
            "code": code,
            "title": _TITLES.get(status, "Error"),
            "detail": message,
        }
        if meta:
            err["meta"] = meta
        return _HttpError(status, {"errors": [err]})
    return _HttpError(status, {"code": code, "message": message, "meta": meta or {}})


class _Budget:
    """Fixed-window counter aligned to the epoch (window k covers [k*W, (k+1)*W))."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.window_id = -1
        self.used = 0
        self.lock = threading.Lock()

    def _roll(self, now: float) -> None:
        wid = math.floor(now / self.window)
        if wid != self.window_id:
            self.window_id, self.used = wid, 0

    def take(self, now: float) -> tuple[bool, int, float]:
        with self.lock:
            self._roll(now)
            ok = self.used < self.limit
            if ok:
                self.used += 1
            return ok, max(0, self.limit - self.used), (self.window_id + 1) * self.window

    def peek(self, now: float) -> tuple[int, float]:
        with self.lock:
            self._roll(now)
            return max(0, self.limit - self.used), (self.window_id + 1) * self.window

    def consume(self, n: int, now: float) -> tuple[int, float]:
        """Spend n units of the current window, as another app on the same org would."""
        with self.lock:
            self._roll(now)
            self.used = min(self.limit, self.used + max(0, n))
            return max(0, self.limit - self.used), (self.window_id + 1) * self.window


@dataclass
class _Route:
    kind: str  # stats key and error context
    role: str | None  # read role the endpoint needs (search adds the search roles)
    handler: Callable[..., _Response]
    search: bool = False


# ----------------------------------------------------------------------------- Emulator


class Emulator:
    """A real HTTP server on 127.0.0.1 in a daemon thread; use as a context manager."""

    def __init__(
        self, config: EmulatorConfig | None = None, port: int = 0, *, host: str = "127.0.0.1"
    ) -> None:
        self.config = dataclasses.replace(config) if config else EmulatorConfig()
        self.config.fault_kinds = dict(self.config.fault_kinds)
        self.config.validate()
        self._churn = normalize_churn(self.config.churn)
        self.config.churn = dict(self.config.churn)
        self._churn_rng = Random(self.config.seed * 1_000_033 + 29)
        self._churned: dict[str, set[str]] = {}
        self._churn_lock = threading.Lock()
        self.host = host
        self.port = port
        self.base_url = ""
        self.dataset: Dataset = generate_dataset(self.config)
        self.errors: list[str] = []  # handler exceptions (kept quiet, inspected by tests)
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._fault_lock = threading.Lock()
        self._fault_rng = Random(self.config.fault_seed)
        self._org = _Budget(self.config.org_rate_limit, self.config.rate_window_seconds)
        self._search = _Budget(self.config.search_rate_limit, self.config.rate_window_seconds)
        self._search_cache: OrderedDict[tuple[str, int, int], list[dict[str, Any]]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._generation = 0  # bumped by stop(): handlers of a stopped server drop their writes
        self.webhooks = WebhookSender(
            self._count,
            attempts=self.config.webhook_attempts,
            backoff_seconds=self.config.webhook_backoff_seconds,
        )
        self.webhooks.configure(
            self.config.webhook_url, self.config.webhook_secret, self.config.webhook_header
        )
        self.dataset.listeners.append(self.webhooks.enqueue)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        handler = type("KustomerEmulatorHandler", (_Handler,), {"emu": self})
        server = self._bind(handler)
        server.daemon_threads = True
        server.handle_error = self._handle_error  # type: ignore[method-assign]
        self._server = server
        self.port = server.server_address[1]
        self.base_url = f"http://{self.host}:{self.port}"
        self._thread = loopback_http.serve_in_thread(server)
        return self

    def _bind(self, handler: type[_Handler]) -> ThreadingHTTPServer:
        return loopback_http.bind(self.host, self.port, handler, attempts=20)

    def _open_connections(self) -> list[socket.socket]:
        with self._conns_lock:
            return list(self._conns)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._generation += 1
        loopback_http.shut_down(server, self._open_connections, self._thread)

    def restart(self) -> Emulator:
        """Stop and start again on the same port, keeping dataset, budgets, stats and records.

        Connections in flight are cut (their responses are never sent), as when a server behind
        the load balancer is replaced mid-run.
        """
        self.stop()
        self._count("restarts")
        return self.start()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.webhooks.close()

    def _handle_error(self, request: Any, client_address: Any) -> None:
        self.errors.append(traceback.format_exc())
        self._count("handler_errors")

    # -- public helpers --------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        with self._stats_lock:
            return dict(self._stats)

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self._stats[key] += n

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

    def truth(self, entity: str, include_deleted: bool = True) -> list[dict[str, Any]]:
        """Current resources of a type (copies), for comparing an extraction with the source."""
        if entity == "metadata":
            items = list(self.dataset.metadata.values())
        elif entity in ENTITY_TYPES:
            items = self.dataset.all(entity, include_deleted=include_deleted)
        else:
            raise ValueError(f"unknown entity type {entity!r}")
        return json.loads(json.dumps(sorted(items, key=lambda r: r["id"])))

    def set_churn(self, churn: dict[str, ChurnSpec], *, reset: bool = False) -> None:
        """Replace the churn map ({} turns churn off); reset also forgets the churned ids."""
        parsed = normalize_churn(churn)
        with self._churn_lock:
            self._churn = parsed
            self.config.churn = dict(churn)
            if reset:
                self._churned.clear()

    def churned(self, type_: str) -> set[str]:
        """Ids that churn changed or created: a client may legitimately see these twice or late."""
        with self._churn_lock:
            return set(self._churned.get(type_, ()))

    def removed(self) -> dict[str, list[str]]:
        """Hard-deleted ids per type (merged customers are in `merged()`)."""
        with self.dataset.lock:
            return {t: list(ids) for t, ids in self.dataset.hard_deleted.items()}

    def merged(self) -> dict[str, str]:
        """Merged customers, loser -> survivor."""
        with self.dataset.lock:
            return dict(self.dataset.merged)

    def set_webhook(
        self, url: str | None, secret: str | None = None, header: str | None = None
    ) -> None:
        """Send outbound webhooks to `url` from now on (None stops them)."""
        self.webhooks.configure(url, secret, header or self.config.webhook_header)
        self.config.webhook_url = url

    def consume(self, org: int = 0, search: int = 0) -> dict[str, dict[str, float]]:
        """Spend budget from the current fixed windows; returns what is left and when it resets."""
        now = time.time()
        org_left, org_reset = self._org.consume(int(org), now)
        search_left, search_reset = self._search.consume(int(search), now)
        return {
            "remaining": {"org": org_left, "search": search_left},
            "reset": {"org": org_reset, "search": search_reset},
        }

    # -- request processing ----------------------------------------------------------------

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

    def _rate_headers(self, limit: int, remaining: int, reset: float, now: float) -> dict[str, str]:
        if self.config.reset_header_mode == "epoch":
            reset_value = str(math.ceil(reset))
        else:
            reset_value = str(max(0, math.ceil(reset - now)))
        return {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": reset_value,
        }

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

    def _authenticate(self, headers: Any) -> frozenset[str] | None:
        auth = headers.get("Authorization") or ""
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if token and token in self.config.expired_keys:
            raise _HttpError(401, {"code": "unauthorized", "message": "Expired token"})
        if token and token in self.config.wrong_pod_keys:
            raise _HttpError(401, {"code": "unauthorized", "message": WRONG_POD_MESSAGE})
        if not token or token not in self.config.api_keys:
            raise _HttpError(401, {"code": "unauthorized", "message": "Unauthorized"})
        return self.config.api_keys[token]

    def _authorize(self, roles: frozenset[str] | None, route: _Route, body: bytes) -> None:
        if roles is None:
            return
        needed: list[str] = []
        if route.search:
            if not roles.intersection(SEARCH_ROLES):
                needed.append(SEARCH_ROLES[0])
            ctx = _peek_context(body)
            if ctx in READ_ROLES and READ_ROLES[ctx] not in roles:
                needed.append(READ_ROLES[ctx])
        elif route.role and route.role not in roles:
            needed.append(route.role)
        if not needed:
            return
        self._count("permission_errors")
        status = self.config.permission_error_status
        message = f"Forbidden: the API key is missing the role {needed[0]}"
        raise _error(
            status,
            "forbidden" if status == 403 else "unauthorized",
            message,
            jsonapi=route.search,
            meta={"role": needed[0], "roles": needed},
        )

    # -- routing ---------------------------------------------------------------------------

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

    # -- paging ----------------------------------------------------------------------------

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

    def _churn_after_page(
        self, context: str, items: list[dict[str, Any]], page: int, size: int
    ) -> None:
        """Move the org on between page requests: change records inside the window being paged.

        Half the changes (rounded at random) hit the page just served and half hit records not
        yet served; a change on a served page shifts every later record up one place, which is
        what makes page-number paging skip the record at the next boundary.
        """
        with self._churn_lock:
            spec = self._churn.get(context)
        if not spec:
            return
        ds = self.dataset
        with ds.lock, self._churn_lock:
            live = ds.records.get(context, {})
            start = (page - 1) * size if page <= self._max_pages(size) else len(items)
            end = min(len(items), start + size)

            def pool(chunk: list[dict[str, Any]]) -> list[str]:
                return [r["id"] for r in chunk if r["id"] in live and not is_deleted(live[r["id"]])]

            served, later, earlier = pool(items[start:end]), pool(items[end:]), pool(items[:start])
            rng = self._churn_rng
            n = spec["change"]
            n_served = n // 2 + (n % 2 if rng.random() < 0.5 else 0)
            n_served = min(n_served, len(served))
            n_later = min(n - n_served, len(later))
            n_served = min(n - n_later, len(served))
            chosen = rng.sample(served, n_served) + rng.sample(later, n_later)
            rest = min(n - len(chosen), len(earlier))
            chosen += rng.sample(earlier, rest)
            changed = ds.change(context, ids=chosen) if chosen else []
            created = ds.create(context, spec["create"]) if spec["create"] else []
            bucket = self._churned.setdefault(context, set())
            bucket.update(changed, created)
            for id_ in created if context in ("message", "note") else ():
                conv = ((ds.get(context, id_) or {}).get("relationships") or {}).get("conversation")
                data = (conv or {}).get("data")
                if isinstance(data, dict) and data.get("id"):  # a new child touched its parent
                    self._churned.setdefault("conversation", set()).add(data["id"])
        self._count("churn.changed", len(changed))
        if created:
            self._count("churn.created", len(created))

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

    # -- admin -----------------------------------------------------------------------------

    def _admin(self, method: str, path: str, query: dict[str, str], body: bytes) -> _Response:
        parts = path.split("/")[2:]  # ["", "__admin", ...]
        try:
            payload = json.loads(body) if body else {}
        except ValueError as exc:
            raise _HttpError(400, {"code": "invalid_json", "message": str(exc)}) from exc
        if method == "GET" and len(parts) == 2 and parts[0] == "truth":
            include = query.get("include_deleted", "true").lower() not in ("0", "false", "no")
            try:
                data = self.truth(parts[1], include_deleted=include)
            except ValueError as exc:
                raise _HttpError(404, {"code": "not_found", "message": str(exc)}) from exc
            return _json(200, {"data": data, "meta": {"total": len(data)}})
        if method == "GET" and parts == ["stats"]:
            return _json(200, self.stats)
        if method == "GET" and parts == ["clock"]:
            return _json(200, {"now": self.dataset.clock().isoformat()})
        if method == "POST" and parts == ["faults"]:
            kinds = payload.get("fault_kinds") or {}
            try:
                self.set_faults(
                    float(payload.get("fault_rate", self.config.fault_rate)),
                    slow_seconds=payload.get("slow_seconds"),
                    **{str(k): float(v) for k, v in kinds.items()},
                )
            except (TypeError, ValueError) as exc:
                raise _HttpError(400, {"code": "invalid_faults", "message": str(exc)}) from exc
            return _json(
                200, {"fault_rate": self.config.fault_rate, "fault_kinds": self.config.fault_kinds}
            )
        if method == "POST" and parts == ["mutate"]:
            try:
                result = self._admin_mutate(payload)
            except (TypeError, ValueError) as exc:
                raise _HttpError(400, {"code": "invalid_mutation", "message": str(exc)}) from exc
            return _json(200, result)
        if method == "POST" and parts == ["churn"]:
            if not isinstance(payload, dict):
                raise _HttpError(400, {"code": "invalid_churn", "message": "expected an object"})
            spec = dict(payload)
            reset = bool(spec.pop("reset", False))
            try:
                if spec or not reset:  # {"reset": true} alone keeps the current map
                    self.set_churn(spec, reset=reset)
                else:
                    self.set_churn(self.config.churn, reset=True)
            except ValueError as exc:
                raise _HttpError(400, {"code": "invalid_churn", "message": str(exc)}) from exc
            return _json(200, {"churn": self.config.churn})
        if method == "GET" and parts == ["churned"]:
            with self._churn_lock:
                churned = {t: sorted(ids) for t, ids in self._churned.items()}
            return _json(200, churned)
        if method == "GET" and parts == ["removed"]:
            return _json(200, {**self.removed(), "merged": self.merged()})
        if method == "POST" and parts == ["merge"]:
            try:
                raw = payload.get("pairs")
                pairs = None if raw is None else [(str(a), str(b)) for a, b in raw]
                done = self.dataset.merge_customers(pairs, n=int(payload.get("n", 0)))
            except (TypeError, ValueError) as exc:
                raise _HttpError(400, {"code": "invalid_merge", "message": str(exc)}) from exc
            return _json(200, {"pairs": [list(p) for p in done]})
        if method == "POST" and parts == ["patch"]:
            try:
                ids = payload.get("ids")
                custom = payload.get("custom")
                attributes = payload.get("attributes")
                if custom is not None and not isinstance(custom, dict):
                    raise ValueError("custom must be an object")
                if attributes is not None and not isinstance(attributes, dict):
                    raise ValueError("attributes must be an object")
                patched = self.dataset.patch(
                    str(payload.get("type")),
                    ids=None if ids is None else list(ids),
                    n=int(payload.get("n", 0)),
                    custom=custom,
                    attributes=attributes,
                )
            except (TypeError, ValueError) as exc:
                raise _HttpError(400, {"code": "invalid_patch", "message": str(exc)}) from exc
            return _json(200, {"ids": patched})
        if parts == ["webhooks"] and method in ("GET", "POST"):
            if method == "POST":
                if not isinstance(payload, dict):
                    raise _HttpError(400, {"code": "invalid_webhook", "message": "expected {url}"})
                try:
                    url = payload.get("url")
                    self.set_webhook(
                        None if url is None else str(url),
                        secret=payload.get("secret"),
                        header=payload.get("header"),
                    )
                except (TypeError, ValueError) as exc:
                    raise _HttpError(400, {"code": "invalid_webhook", "message": str(exc)}) from exc
            return _json(200, self.webhooks.describe())  # never the secret
        if method == "POST" and parts == ["consume"]:
            try:
                left = self.consume(int(payload.get("org", 0)), int(payload.get("search", 0)))
            except (TypeError, ValueError) as exc:
                raise _HttpError(400, {"code": "invalid_consume", "message": str(exc)}) from exc
            return _json(200, left)
        if method == "POST" and parts == ["advance"]:
            self.dataset.advance(float(payload.get("seconds", 0)))
            return _json(200, {"now": self.dataset.clock().isoformat()})
        raise _HttpError(404, {"code": "not_found", "message": f"No admin route {method} {path}"})

    def _admin_mutate(self, payload: dict[str, Any]) -> dict[str, list[str]]:
        """Counts as before; `ids` (or a list as an operation's value) targets exact records.

        With `ids`, every one of change / delete / hard_delete given a truthy value applies to
        those ids; the whole request is refused before any change if an id is unknown.
        """
        type_ = str(payload.get("type"))
        if type_ not in ENTITY_TYPES:
            raise ValueError(f"unknown entity type {type_!r}")
        shared = payload.get("ids")
        if shared is not None and not isinstance(shared, list):
            raise ValueError("ids must be a list")
        plan: dict[str, tuple[int, list[str] | None]] = {}
        for op in ("change", "delete", "hard_delete"):
            value = payload.get(op, 0)
            if isinstance(value, list):
                plan[op] = (1, [str(i) for i in value])
            else:
                plan[op] = (int(value), None if shared is None else [str(i) for i in shared])
        create = int(payload.get("create", 0))
        ds = self.dataset
        with ds.lock:
            for n, ids in plan.values():
                unknown = [i for i in ids or () if n and ds.get(type_, i) is None]
                if unknown:
                    raise ValueError(f"unknown {type_} ids: {unknown}")
            (nc, ic), (nd, idd), (nh, ih) = plan["change"], plan["delete"], plan["hard_delete"]
            return {
                "changed": ds.change(type_, nc, ids=ic) if nc else [],
                "created": ds.create(type_, create) if create else [],
                "deleted": ds.delete(type_, nd, ids=idd) if nd else [],
                "hard_deleted": ds.hard_delete(type_, nh, ih) if nh else [],
            }


_ID = r"(?P<id>[0-9a-fA-F]{1,64})"
# (method, path pattern, route kind, entity type); list kinds end with their page-size key.
_ROUTES: tuple[tuple[str, re.Pattern[str], str, str], ...] = tuple(
    (m, re.compile(p), kind, entity)
    for m, p, kind, entity in (
        ("GET", r"/v1/users/current", "current_user", ""),
        ("POST", r"/v1/customers/search", "search", ""),
        ("GET", rf"/v1/conversations/{_ID}", "get_conversation", "conversation"),
        ("GET", rf"/v1/conversations/{_ID}/messages", "conversation_messages", "message"),
        ("GET", rf"/v1/conversations/{_ID}/notes", "conversation_notes", "note"),
        ("GET", r"/v1/customers", "list_customers", "customer"),
        ("GET", rf"/v1/customers/{_ID}", "get_customer", "customer"),
        ("GET", r"/v1/users", "list_users", "user"),
        ("GET", r"/v1/teams", "list_teams", "team"),
        ("GET", r"/v1/tags", "list_tags", "tag"),
        ("GET", r"/v1/brands", "list_brands", "brand"),
        ("GET", r"/v1/satisfaction", "list_satisfaction", "satisfaction"),
        (
            "GET",
            rf"/v1/satisfaction-responses/{_ID}",
            "get_satisfaction_response",
            "satisfaction_response",
        ),
        ("GET", r"/v1/klasses", "list_klasses", "klass"),
        ("GET", r"/v1/metadata/(?P<resource>[A-Za-z_]+)", "metadata", "metadata"),
    )
)


def _peek_context(body: bytes) -> str | None:
    try:
        parsed = json.loads(body or b"null")
    except ValueError:
        return None
    return parsed.get("queryContext") if isinstance(parsed, dict) else None


# ----------------------------------------------------------------------------- HTTP handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API behind its load balancer
    server_version = "KustomerEmulator/1.0"
    timeout = 60  # an idle keep-alive connection does not pin a thread forever
    emu: Emulator

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read stats instead
        return

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle + delayed ACK add ~40 ms.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.emu._conns_lock:
            self.emu._conns.add(self.connection)

    def finish(self) -> None:
        with self.emu._conns_lock:
            self.emu._conns.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def _dispatch(self) -> None:
        generation = self.emu._generation
        try:
            self._respond()
        except OSError:
            if self.emu._generation == generation:
                raise
            self.close_connection = True  # the server was stopped under us: the drop is intended

    def _respond(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        resp, delay = self.emu.handle(self.command, self.path, self.headers, body)
        if delay > 0:
            time.sleep(delay)
        if resp.action == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if resp.action == "truncate":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if resp.action == "truncate":
            self.wfile.write(resp.body[: max(1, len(resp.body) // 2)])
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve_forever(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8755) -> None:
    """Run the emulator in the foreground until interrupted (used by the CLI)."""
    emu = Emulator(config, port, host=host)
    emu.start()
    if threading.current_thread() is threading.main_thread():
        # `docker stop` / `kill` send SIGTERM: stop as cleanly as on Ctrl-C.
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


__all__ = [
    "DEEP_PAGING_MODES",
    "FAULT_KINDS",
    "MERGED_LOOKUP_MODES",
    "NO_SEARCH_KEY",
    "NO_SEARCH_ROLES",
    "READ_ROLES",
    "SEARCH_ROLES",
    "Emulator",
    "EmulatorConfig",
    "serve_forever",
]
