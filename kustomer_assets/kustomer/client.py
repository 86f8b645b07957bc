"""KustomerClient: one pooled HTTP connection with retries, rate limiting, auth errors and list
paging. Search windows (cursor paging and the id check) live in `search`, on top of
`search_page`; this module only sends requests politely and turns answers into errors that say
what to do.
"""

from __future__ import annotations

import importlib.metadata
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from . import budget as budget_mod
from . import roles
from .budget import RateBudget, retry_after_delay
from .errors import (
    KustomerAuthError,
    KustomerError,
    KustomerNotFoundError,
    KustomerPermissionError,
    KustomerRateLimitError,
    KustomerResponseError,
    KustomerServerError,
    describe,
    parse_error_body,
    pod_from_message,
    pod_url,
    redact,
    register_secret,
    role_named_by,
)
from .parse import int_or_none
from .search import SearchWindow
from .settings import ENV_API_KEY, ENV_BASE_URL, ENV_SUBDOMAIN, KustomerSettings

_LOG = logging.getLogger(__name__)

SEARCH_PATH = "/v1/customers/search"
CURRENT_USER_PATH = "/v1/users/current"
_MAX_LIST_PAGES = 100_000
_MAX_429_ATTEMPTS = 1_000


def _version() -> str:
    try:
        return importlib.metadata.version("kustomer-assets")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


USER_AGENT = f"kustomer-assets/{_version()}"


@dataclass
class ClientStats:
    """Counters per client so a run can report what it cost against the shared org budget."""

    requests: int = 0
    search_requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    wait_seconds: float = 0.0
    pages: int = 0
    window_narrowings: int = 0
    backoff_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def as_dict(self) -> dict[str, int | float]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}


class _Malformed(Exception):
    """A 2xx body that is not the JSON object we need; retried like a 5xx."""


_SENTENCE_BREAK = re.compile(r"[.!?]+(?:\s+|$)")


def _clause(text: str) -> str:
    """Server or library text made part of one sentence (no full stops of its own): the
    run's failure description is one sentence, and an HTML error page is several."""
    return _SENTENCE_BREAK.sub("; ", text).strip().rstrip(";").strip()


def _gave_up(
    method: str, plain: str, attempts: int, problem: str, response: httpx.Response | None
) -> KustomerError:
    """The error of a request whose transient failures outlasted every retry: what failed
    last, and what to do about it, in the one sentence the run's failure shows."""
    status = None if response is None else response.status_code
    head = f"Kustomer {method} {plain} failed after {attempts} attempts ({_clause(problem)})"
    where = f"{ENV_BASE_URL} (or {ENV_SUBDOMAIN})"
    if status is not None and 200 <= status < 300:
        return KustomerResponseError(
            f"{head}: that is not the API's JSON, so something other than the Kustomer API may "
            f"be answering; check that {where} points at your org's API, then retry the run.",
            status=status,
            method=method,
            endpoint=plain,
        )
    if status is None:
        remedy = f"check {where} and the network from this machine, then retry the run"
    else:
        remedy = "Kustomer kept failing, so retry the run later (the table keeps its data)"
    return KustomerServerError(f"{head}; {remedy}.", status=status, method=method, endpoint=plain)


def _meta(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("meta")
    return meta if isinstance(meta, dict) else {}


def _next_link(body: dict[str, Any]) -> str | None:
    links = body.get("links")
    if not isinstance(links, dict):
        return None
    nxt = links.get("next")
    return nxt if isinstance(nxt, str) and nxt.strip() else None


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
        settings.validate()
        register_secret(settings.api_key)
        self.settings = settings
        self.log = logger or _LOG
        self.stats = ClientStats()
        self._sleep = sleep
        self._wall = wall_clock
        self._random = random.Random()
        self.budget = RateBudget(
            settings.org_requests_per_minute,
            settings.search_requests_per_minute,
            reserve=settings.rate_limit_reserve,
            clock=clock,
            sleep=sleep,
            wall_clock=wall_clock,
            on_wait=self._announce_wait,
        )
        self._root_path = urlsplit(settings.api_root).path.rstrip("/")
        self._key_ok: bool | None = None
        self._probe_lock = threading.Lock()
        self._learned_search_page: int | None = None
        self._http = httpx.Client(
            base_url=settings.api_root,
            headers={
                "Authorization": f"Bearer {settings.api_key}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=httpx.Timeout(settings.timeout_seconds),
            transport=transport,
            follow_redirects=False,
        )

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KustomerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KustomerClient(api_root={self.settings.api_root!r})"

    # -- public API ------------------------------------------------------------------------
    def current_user(self) -> dict[str, Any]:
        """GET /v1/users/current: the cheapest way to prove the key works."""
        payload = self._request("GET", CURRENT_USER_PATH, expect="object")
        self._key_ok = True
        return payload["data"]

    def first_page(
        self, path: str, *, search_body: dict[str, Any] | None = None, role: str | None = None
    ) -> dict[str, Any]:
        """One page of one record (a GET list, or a search when `search_body` is given): the
        cheapest request that proves a role, as the key check needs."""
        params = {"page": 1, "pageSize": 1}
        if search_body is not None:
            return self._request(
                "POST", path, params=params, json=search_body, role=role, kind="search"
            )
        return self._request("GET", path, params=params, role=role)

    def get_resource(self, path: str, *, role: str | None = None) -> dict[str, Any]:
        """GET one resource and return its `data` object."""
        payload = self._request("GET", path, role=role, expect="object")
        return payload["data"]

    def iter_list(
        self,
        path: str,
        *,
        page_size: int | None = None,
        role: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of a list endpoint, following links.next; duplicates across pages are dropped."""
        first_query: dict[str, Any] = dict(params or {})
        first_query.setdefault("page", 1)
        first_query.setdefault("pageSize", page_size or self.settings.list_page_size)
        query: dict[str, Any] | None = first_query
        current = self._local_path(path)
        seen_ids: set[tuple[Any, Any]] = set()
        visited: set[str] = set()
        received = 0
        total: int | None = None
        page_no = int_or_none(first_query.get("page")) or 1
        for _ in range(_MAX_LIST_PAGES):
            try:
                payload = self._request("GET", current, params=query, role=role, expect="list")
            except KustomerResponseError as exc:
                if received and exc.status in (400, 404):
                    self.log.warning(
                        "Kustomer %s stopped paging with %s after %d records",
                        self._plain(current),
                        exc.status,
                        received,
                    )
                    break
                raise
            self.stats.add(pages=1)
            data = [r for r in (payload.get("data") or []) if isinstance(r, dict)]
            meta = _meta(payload)
            if total is None:
                total = int_or_none(meta.get("total"))
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
            nxt = _next_link(payload)
            if nxt is not None and data:
                local = self._local_path(nxt, current=current)
                if local in visited:
                    break
                visited.add(local)
                current, query = local, None
                continue
            if "links" not in payload and data:
                # Some endpoints omit links altogether: fall back to meta's page counters.
                page = int_or_none(meta.get("page")) or page_no
                total_pages = int_or_none(meta.get("totalPages"))
                if total_pages is not None and page < total_pages:
                    page_no = page + 1
                    base = dict(params or {})
                    base["page"] = page_no
                    base.setdefault("pageSize", page_size or self.settings.list_page_size)
                    current, query = self._local_path(path), base
                    continue
            break
        if total is not None and received < total:
            self.log.warning(
                "Kustomer %s listed %d of %d reported records (the server stopped paging)",
                self._plain(path),
                received,
                total,
            )

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
            self,
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
        params: dict[str, Any] | None = None
        if path is None:
            params = {"page": page, "pageSize": page_size or self.settings.search_page_size}
            if ids_only:
                params["idsOnly"] = "true"
        payload = self._request(
            "POST",
            path or SEARCH_PATH,
            params=params,
            json=body,
            role=role,
            kind="search",
            expect="list",
        )
        self.stats.add(pages=1)
        return payload

    def search_page_hint(self) -> int:
        """The page size search really serves: what we ask for, or less if the server caps it."""
        learned = self._learned_search_page
        requested = self.settings.search_page_size
        return min(requested, learned) if learned else requested

    def learn_search_page_size(self, size: int) -> None:
        """Remember a server's page cap, seen as a page shorter than asked while more remain."""
        if size > 0 and (self._learned_search_page is None or size < self._learned_search_page):
            self._learned_search_page = size

    def local_path(self, link: str) -> str:
        """A next link as a path under our API root (never another host)."""
        return self._local_path(link)

    def _plain(self, path: str) -> str:
        """Path without the query string, for messages."""
        return urlsplit(path).path or path

    def _local_path(self, link: str, *, current: str | None = None) -> str:
        """Path+query of a link relative to our api_root: never follow a link to another host."""
        parts = urlsplit(link.strip())
        path = parts.path
        if not path:
            path = urlsplit(current).path if current else "/"
        elif not path.startswith("/"):
            base = urlsplit(current).path if current else "/"
            path = base.rsplit("/", 1)[0] + "/" + path
        path = "/" + path.lstrip("/")
        if self._root_path and (path == self._root_path or path.startswith(self._root_path + "/")):
            path = path[len(self._root_path) :] or "/"
        return path + (f"?{parts.query}" if parts.query else "")

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        ceiling = min(s.backoff_max_seconds, s.backoff_base_seconds * (2**attempt))
        return ceiling * self._random.uniform(0.5, 1.0)

    def _rate_limit_delay(self, response: httpx.Response, attempt: int) -> tuple[float, str]:
        now = self._wall()
        delay = retry_after_delay(response.headers.get("retry-after"), now=now)
        if delay is not None and delay > 0:
            return delay, "Retry-After"
        reset = budget_mod.reset_delay(response.headers.get("x-ratelimit-reset"), now=now)
        if reset is not None and reset > 0:
            return reset, "x-ratelimit-reset"
        return max(self._backoff(attempt), 0.05), "backoff"

    def _wait(self, kind: str) -> None:
        waited = self.budget.acquire(budget_mod.SEARCH if kind == "search" else budget_mod.ORG)
        if waited > 0:
            self.stats.add(rate_limit_waits=1, wait_seconds=waited)
            self.log.debug("Waited %.1fs for the Kustomer rate budget (%s)", waited, kind)

    def _announce_wait(self, seconds: float, budget: str) -> None:
        """Said before the pause: a run that goes quiet for a minute otherwise looks hung."""
        log = self.log.info if seconds >= 1 else self.log.debug
        resume = datetime.fromtimestamp(self._wall() + seconds, UTC).strftime("%H:%M:%S")
        what = budget if budget == budget_mod.RESET else f"{budget} budget"
        log(
            "Waiting %s s for the %s, resuming %s UTC",
            f"{seconds:.{0 if seconds >= 10 else 1}f}",
            what,
            resume,
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        role: str | None = None,
        kind: str = "org",
        expect: str = "any",
    ) -> dict[str, Any]:
        """Send one logical request, retrying what is transient; returns the JSON object body."""
        s = self.settings
        path = self._local_path(path)
        plain = self._plain(path)
        attempt = 0
        rate_waited = 0.0
        rate_hits = 0
        last_problem = ""
        while True:
            self._wait(kind)
            self.stats.add(requests=1, search_requests=1 if kind == "search" else 0)
            response: httpx.Response | None = None
            try:
                response = self._http.request(method, path, params=params, json=json)
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise KustomerResponseError(
                    f"Cannot send {method} {plain}: {type(exc).__name__}: {exc}",
                    method=method,
                    endpoint=plain,
                ) from None
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if response is not None:
                self.budget.observe(
                    response.headers,
                    budget_mod.SEARCH if kind == "search" else budget_mod.ORG,
                )
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        return self._decode(response, expect)
                    except _Malformed as exc:
                        last_problem = f"{status} with {exc}"
                elif status == 429:
                    delay, source = self._rate_limit_delay(response, rate_hits)
                    rate_hits += 1
                    if rate_waited + delay > s.max_rate_limit_wait_seconds or (
                        rate_hits > _MAX_429_ATTEMPTS
                    ):
                        raise KustomerRateLimitError(
                            f"Kustomer kept answering 429 to {method} {plain}: waited "
                            f"{rate_waited:.0f}s and would need {delay:.0f}s more, over the "
                            f"max_rate_limit_wait_seconds limit of "
                            f"{s.max_rate_limit_wait_seconds:.0f}s; other apps may be using the "
                            f"org's budget, so retry later or lower the request rate.",
                            status=429,
                            method=method,
                            endpoint=plain,
                        )
                    rate_waited += delay
                    self.log.warning(
                        "Kustomer answered 429 to %s %s; waiting %.1fs (%s)",
                        method,
                        plain,
                        delay,
                        source,
                    )
                    self.stats.add(rate_limit_waits=1, wait_seconds=delay)
                    # Block the shared budget so other threads pause too, then sleep it out.
                    before = self.budget._now()
                    self.budget.block(delay)
                    self._sleep_blocked(before, delay)
                    continue
                elif status in (401, 403):
                    self._raise_auth(response, method, plain, role, json)
                elif status >= 500 or status == 408:
                    last_problem = f"{status}: {parse_error_body(response)}"
                elif 300 <= status < 400:
                    raise KustomerResponseError(
                        f"Kustomer answered {status} (a redirect) to {method} {plain}; "
                        f"check {ENV_BASE_URL}: redirects are not followed so the key is never "
                        f"sent to another host.",
                        status=status,
                        method=method,
                        endpoint=plain,
                    )
                else:
                    message = describe(status, method, plain, parse_error_body(response))
                    error_cls = KustomerNotFoundError if status == 404 else KustomerResponseError
                    raise error_cls(message, status=status, method=method, endpoint=plain)
            # transient failure: retry with backoff
            if attempt >= s.max_retries:
                raise _gave_up(method, plain, attempt + 1, last_problem, response)
            delay = self._backoff(attempt)
            if response is not None and response.status_code >= 500:
                hinted = retry_after_delay(response.headers.get("retry-after"), now=self._wall())
                if hinted:
                    delay = min(max(delay, hinted), s.backoff_max_seconds)
            attempt += 1
            self.stats.add(retries=1, backoff_seconds=delay)
            self.log.warning(
                "Kustomer %s %s failed (%s); retry %d/%d in %.1fs",
                method,
                plain,
                redact(last_problem),
                attempt,
                s.max_retries,
                delay,
            )
            self._sleep(delay)

    def _sleep_blocked(self, before: float, delay: float) -> None:
        """Sleep out a 429 pause through the budget so the clock offset logic stays consistent."""
        remaining = before + delay - self.budget._now()
        if remaining > 0:
            start = self.budget._clock()
            self._sleep(remaining)
            elapsed = self.budget._clock() - start
            if elapsed < remaining * 0.5:
                with self.budget._lock:
                    self.budget._offset += remaining - max(elapsed, 0.0)

    def _decode(self, response: httpx.Response, expect: str) -> dict[str, Any]:
        try:
            payload = response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Malformed(f"a body that is not valid JSON ({type(exc).__name__})") from None
        if not isinstance(payload, dict):
            raise _Malformed(f"a JSON {type(payload).__name__} instead of an object")
        if "data" not in payload:
            raise _Malformed("a JSON object without 'data'")
        data = payload["data"]
        if expect == "object" and not isinstance(data, dict):
            raise _Malformed(f"'data' that is a {type(data).__name__}, not an object")
        if expect == "list":
            if data is None:
                payload["data"] = []
            elif not isinstance(data, list):
                raise _Malformed(f"'data' that is a {type(data).__name__}, not a list")
        return payload

    def _raise_auth(
        self,
        response: httpx.Response,
        method: str,
        plain: str,
        role: str | None,
        body: Any = None,
    ) -> None:
        status = response.status_code
        server = parse_error_body(response)
        pod = pod_from_message(server)
        if pod:
            url = pod_url(pod)
            raise KustomerAuthError(
                f"Kustomer answered {status} to {method} {plain}: {server}; your org is on "
                f"{pod}: set {ENV_BASE_URL} to {url}",
                pod=pod,
                status=status,
                method=method,
                endpoint=plain,
            )
        is_probe = plain.rstrip("/") == CURRENT_USER_PATH
        if (is_probe and status == 401) or "expired" in server.lower():
            self._key_ok = False
            hint = (
                "the key has expired: create a new key"
                if "expired" in server.lower()
                else "check that the key is current and complete, or create a new key"
            )
            raise KustomerAuthError(
                f"Kustomer rejected the API key ({status} to {method} {plain}: {server}); "
                f"{hint} in Kustomer Settings → Security → API Keys and set {ENV_API_KEY}.",
                status=status,
                method=method,
                endpoint=plain,
            )
        if not is_probe:
            self._ensure_key_valid()
        named = role_named_by(response)
        if named is None and plain == SEARCH_PATH:
            named = self._which_search_role(body, role)
        raise KustomerPermissionError(
            named or role,
            plain,
            method=method,
            status=status,
            detail=server,
            search=plain == SEARCH_PATH and named is None,
        )

    def _which_search_role(self, body: Any, role: str | None) -> str | None:
        """A refused search whose answer names no role lacks either a search role or the read
        role of its context. One conversation search (whose read role is required anyway)
        tells them apart: refused too, the search role is missing."""
        context = body.get("queryContext") if isinstance(body, dict) else None
        if role in (None, *roles.SEARCH_ROLES):
            return roles.SEARCH_CREATE
        if context in (None, "conversation"):
            return None
        probe = {"queryContext": "conversation", "and": [], "sort": []}
        try:
            self._request("POST", SEARCH_PATH, params={"page": 1, "pageSize": 1}, json=probe)
        except KustomerPermissionError as exc:
            return exc.role if exc.role in roles.SEARCH_ROLES else roles.SEARCH_CREATE
        except KustomerError:
            return None
        return role

    def _ensure_key_valid(self) -> None:
        """Probe users/current once per client to tell a missing role from a bad key."""
        with self._probe_lock:
            if self._key_ok is True:
                return
            if self._key_ok is False:
                raise KustomerAuthError(
                    f"Kustomer rejected the API key on {CURRENT_USER_PATH}; create a new key in "
                    f"Kustomer Settings → Security → API Keys and set {ENV_API_KEY}.",
                    endpoint=CURRENT_USER_PATH,
                )
            try:
                self.current_user()
            except KustomerAuthError:
                self._key_ok = False
                raise
            except KustomerPermissionError:
                # Authenticated but not allowed to read users: the key itself is fine.
                self._key_ok = True


__all__ = ["ClientStats", "KustomerClient", "SearchWindow"]
