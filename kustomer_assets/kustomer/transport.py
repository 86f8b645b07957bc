"""One request to Kustomer, sent politely: one pooled HTTP connection with the key's auth header,
the shared rate budget, retries, 429 handling and errors that say what to do.

Everything above this module (list paging, search windows) sends its requests through
`Transport.get` and `Transport.post`, so every request draws on the same budget, is retried the
same way and fails with the same kind of sentence. The rules:

- Before sending: wait for the org budget (and the search budget for a search POST), since
  Kustomer's budget is org-wide and shared with other apps; every answer's `x-ratelimit-*`
  headers then tell the budget what the server has left, its limit and its window (`budget`).
- 5xx, 408, timeouts, broken connections and 2xx bodies that are not the API's JSON are
  transient: retried with jittered exponential backoff (a 5xx's Retry-After is honoured, up to
  the backoff ceiling), and when they outlast the retries the error says what failed last.
- 429: wait for Retry-After, else x-ratelimit-reset (epoch or seconds), else backoff, and block
  every thread meanwhile; give up only past `max_rate_limit_wait_seconds`.
- 401/403: told apart into a bad key, a wrong pod and a missing role (see `auth`).
- Redirects are refused, never followed, so the key is never sent to another host.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from . import budget as budget_mod
from .auth import KeyGuard
from .budget import RateBudget, retry_after_delay
from .errors import (
    KustomerError,
    KustomerNotFoundError,
    KustomerRateLimitError,
    KustomerResponseError,
    KustomerServerError,
    describe,
    parse_error_body,
    redact,
    register_secret,
)
from .settings import ENV_BASE_URL, ENV_SUBDOMAIN, KustomerSettings
from .stats import ClientStats

_LOG = logging.getLogger("kustomer_assets.kustomer.client")
"""One logger for the whole client, under the name it always had, so log filters keep working."""

_MAX_429_ATTEMPTS = 1_000

Expect = Literal["any", "object", "list"]
"""What `data` must be for a 2xx to count as the API's answer: any, one object or a list."""


def _version() -> str:
    try:
        return importlib.metadata.version("kustomer-assets")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


USER_AGENT = f"kustomer-assets/{_version()}"


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


def _decode(response: httpx.Response, expect: Expect) -> dict[str, Any]:
    """The JSON object of a 2xx, or _Malformed when it is not the API's envelope."""
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


_SHARED_BUDGETS: dict[tuple[object, ...], RateBudget] = {}
_SHARED_LOCK = threading.Lock()


def _budget_for(settings: KustomerSettings, *, shared: bool, **time_: Any) -> RateBudget:
    """The rate budget of a new client. Clients of one process that talk to one org with one
    key and the same budgets share it: a run opens one client per asset, one after another,
    and the share is the run's, not each client's (else each asset would start on a fresh
    minute); each client also starts knowing what the server last said. Clients on injected
    clocks or transports (tests) keep their own."""
    s = settings
    budgets = (s.org_requests_per_minute, s.search_requests_per_minute, s.rate_limit_reserve)
    if not shared:
        return RateBudget(*budgets[:2], reserve=s.rate_limit_reserve, **time_)
    key = (s.api_root, hashlib.sha256(s.api_key.encode()).hexdigest(), budgets)
    with _SHARED_LOCK:
        if key not in _SHARED_BUDGETS:
            _SHARED_BUDGETS[key] = RateBudget(*budgets[:2], reserve=s.rate_limit_reserve)
        return _SHARED_BUDGETS[key]


class Transport:
    """Thread-safe sender of single requests to one org's API root (see module doc)."""

    def __init__(
        self,
        settings: KustomerSettings,
        *,
        http_transport: httpx.BaseTransport | None = None,
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
        self.keys = KeyGuard(self)
        """Whether the key itself is good, learned once: tells a bad key from a missing role."""
        self._sleep = sleep
        self._wall = wall_clock
        self._random = random.Random()
        real_time = (clock, sleep, wall_clock) == (time.monotonic, time.sleep, time.time)
        self.budget = _budget_for(
            settings,
            shared=real_time and http_transport is None,
            clock=clock,
            sleep=sleep,
            wall_clock=wall_clock,
        )
        self._root_path = urlsplit(settings.api_root).path.rstrip("/")
        self._http = httpx.Client(
            base_url=settings.api_root,
            headers={
                "Authorization": f"Bearer {settings.api_key}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=httpx.Timeout(settings.timeout_seconds),
            transport=http_transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        """Close the pooled connection."""
        self._http.close()

    # -- the public API ------------------------------------------------------------------------
    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        role: str | None = None,
        expect: Expect = "any",
    ) -> dict[str, Any]:
        """GET `path` (relative to the API root, or a link under it); the JSON object body.

        `role` is what a refusal names when the server names none."""
        return self._request("GET", path, params=params, role=role, expect=expect)

    def post(
        self,
        path: str,
        json: Any,
        params: Mapping[str, Any] | None = None,
        *,
        role: str | None = None,
        kind: str = budget_mod.SEARCH,
        expect: Expect = "any",
    ) -> dict[str, Any]:
        """POST `json` to `path`; the JSON object body. Kustomer's only POST a reader sends is
        a search, so it draws on the search budget unless `kind` is `budget.ORG`."""
        return self._request(
            "POST", path, params=params, json=json, role=role, kind=kind, expect=expect
        )

    @staticmethod
    def plain(path: str) -> str:
        """Path without the query string, for messages."""
        return urlsplit(path).path or path

    def local_path(self, link: str, *, current: str | None = None) -> str:
        """Path+query of a link relative to our api_root: never follow a link to another host.

        A relative link resolves against `current` (the page it came from)."""
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

    def announce_wait(self, seconds: float, budget: str) -> None:
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

    # -- one logical request -------------------------------------------------------------------
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

    def _acquire(self, kind: str) -> budget_mod.Ticket:
        which = budget_mod.SEARCH if kind == "search" else budget_mod.ORG
        ticket = self.budget.take(which, on_wait=self.announce_wait)
        if ticket.waited > 0:
            self.stats.add(rate_limit_waits=1, wait_seconds=ticket.waited)
            self.log.debug("Waited %.1fs for the Kustomer rate budget (%s)", ticket.waited, kind)
        return ticket

    def _wait_out_429(
        self, response: httpx.Response, method: str, plain: str, hits: int, waited: float
    ) -> float:
        """Sleep out one 429 (every thread pauses with us); the seconds it cost. Raises when
        the request has already waited as long as the settings allow."""
        s = self.settings
        delay, source = self._rate_limit_delay(response, hits)
        if waited + delay > s.max_rate_limit_wait_seconds or hits + 1 > _MAX_429_ATTEMPTS:
            raise KustomerRateLimitError(
                f"Kustomer kept answering 429 to {method} {plain}: waited "
                f"{waited:.0f}s and would need {delay:.0f}s more, over the "
                f"max_rate_limit_wait_seconds limit of "
                f"{s.max_rate_limit_wait_seconds:.0f}s; other apps may be using the "
                f"org's budget, so retry later or lower the request rate.",
                status=429,
                method=method,
                endpoint=plain,
            )
        self.log.warning(
            "Kustomer answered 429 to %s %s; waiting %.1fs (%s)", method, plain, delay, source
        )
        self.stats.add(rate_limit_waits=1, wait_seconds=delay)
        self.budget.pause(delay)
        return delay

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        role: str | None = None,
        kind: str = "org",
        expect: Expect = "any",
    ) -> dict[str, Any]:
        """Send one logical request, retrying what is transient; returns the JSON object body."""
        s = self.settings
        path = self.local_path(path)
        plain = self.plain(path)
        attempt = 0
        rate_waited = 0.0
        rate_hits = 0
        last_problem = ""
        while True:
            ticket = self._acquire(kind)
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
            finally:
                if response is None:  # no answer: the request is no longer in flight either
                    self.budget.done(ticket)
            if response is not None:
                status = response.status_code
                self.budget.observe(response.headers, ticket.kind, ticket, status=status)
                if 200 <= status < 300:
                    try:
                        return _decode(response, expect)
                    except _Malformed as exc:
                        last_problem = f"{status} with {exc}"
                elif status == 429:
                    rate_waited += self._wait_out_429(
                        response, method, plain, rate_hits, rate_waited
                    )
                    rate_hits += 1
                    continue
                elif status in (401, 403):
                    self.keys.raise_refusal(response, method, plain, role, json)
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


__all__ = ["USER_AGENT", "Expect", "Transport"]
