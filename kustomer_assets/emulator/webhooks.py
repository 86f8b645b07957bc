"""The emulator's outbound webhooks: Kustomer Event POSTs for records its mutations store.

Kustomer sends `kustomer.<object>.create` / `.update` events for conversations, customers,
messages, teams and users, with the object's snapshot under `data` and, for updates, what
changed under `changes`; the webhook's custom header carries a shared secret. Deliveries
happen on a background thread so a mutation (an admin call, churn between search pages, a
merge) is never slowed by the receiver, and a failed delivery is retried with exponential
backoff (Kustomer: about ten attempts over ~80 minutes; here `attempts` over seconds), with
the same event id, so a receiver can tell a redelivery from a new event.

Stats (through the emulator's counter): `webhooks.queued`, `webhooks.sent` (a 2xx answer),
`webhooks.retried` (a failed attempt that will be tried again), `webhooks.failed` (given up).
Stdlib only, like the rest of the emulator; `http.client` rather than urllib so an
HTTP(S)_PROXY in the environment never reroutes a loopback delivery.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

WEBHOOK_TYPES: frozenset[str] = frozenset({"conversation", "customer", "message", "team", "user"})
DEFAULT_HEADER = "X-Kustomer-Webhook-Secret"
EMULATOR_ORG = "5f0e0e0e0e0e0e0e0e0e0e0e"


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str | None = field(default=None, repr=False)
    header: str = DEFAULT_HEADER


@dataclass
class _Delivery:
    action: str
    type_: str
    new: dict[str, Any]
    old: dict[str, Any] | None
    body: bytes | None = None
    attempt: int = 0


def _diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`changes` of an update: per changed attribute and relationship, before and after."""
    out: dict[str, Any] = {}
    for part in ("attributes", "relationships"):
        before, after = old.get(part) or {}, new.get(part) or {}
        changed = {
            key: {"op": "replace", "before": before.get(key), "after": after.get(key)}
            for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key)
        }
        if changed:
            out[part] = changed
    return out


def envelope(
    action: str, type_: str, new: dict[str, Any], old: dict[str, Any] | None
) -> dict[str, Any]:
    """A Kustomer Event as the emulator sends it."""
    event: dict[str, Any] = {
        "id": secrets.token_hex(12),
        "name": f"kustomer.{type_}.{action}",
        "org": EMULATOR_ORG,
        "createdAt": (new.get("attributes") or {}).get("updatedAt"),
        "data": new,
    }
    if action == "update" and old is not None:
        event["changes"] = _diff(old, new)
    return event


class WebhookSender:
    """Queues events from dataset mutations and POSTs them from one daemon thread."""

    def __init__(
        self,
        count: Callable[[str, int], None],
        *,
        attempts: int = 6,
        backoff_seconds: float = 0.25,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._count = count
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds
        self._target: WebhookTarget | None = None
        self._queue: list[tuple[float, int, _Delivery]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- configuration ---------------------------------------------------------------------

    def configure(
        self, url: str | None, secret: str | None = None, header: str | None = None
    ) -> None:
        """Send to `url` from now on (None stops sending; queued events are then dropped)."""
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"webhook url must be http(s)://host[:port]/path, got {url!r}")
        with self._cond:
            self._target = (
                WebhookTarget(url, secret or None, header or DEFAULT_HEADER) if url else None
            )
            if self._target is None:
                self._queue.clear()
            self._cond.notify_all()

    def describe(self) -> dict[str, Any]:
        """The target without its secret (what the admin route answers)."""
        target = self._target
        return {
            "url": target.url if target else None,
            "header": target.header if target else None,
            "secret_set": bool(target and target.secret),
            "pending": self.pending,
        }

    # -- producing -------------------------------------------------------------------------

    def enqueue(
        self, action: str, type_: str, new: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        """A dataset listener: called under the dataset lock, so it only queues."""
        if type_ not in WEBHOOK_TYPES or self._target is None:
            return
        with self._cond:
            if self._target is None:
                return
            heapq.heappush(
                self._queue,
                (time.monotonic(), next(self._order), _Delivery(action, type_, new, old)),
            )
            self._count("webhooks.queued", 1)
            if self._thread is None or not self._thread.is_alive():
                self._closed = False
                self._thread = threading.Thread(
                    target=self._run, name="emulator-webhooks", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._in_flight

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self.timeout_seconds + 1)

    # -- delivering ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    if self._queue and self._queue[0][0] <= now:
                        break
                    wait = self._queue[0][0] - now if self._queue else 0.5
                    self._cond.wait(wait)
                if self._closed:
                    return
                _, _, delivery = heapq.heappop(self._queue)
                target = self._target
                self._in_flight += 1
            try:
                if target is not None:
                    self._attempt(delivery, target)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _attempt(self, delivery: _Delivery, target: WebhookTarget) -> None:
        if delivery.body is None:  # built once: a retry is the same event, same id
            event = envelope(delivery.action, delivery.type_, delivery.new, delivery.old)
            delivery.body = json.dumps(event, ensure_ascii=False).encode("utf-8")
        delivery.attempt += 1
        if self._post(target, delivery.body):
            self._count("webhooks.sent", 1)
            return
        if delivery.attempt >= self.attempts:
            self._count("webhooks.failed", 1)
            return
        self._count("webhooks.retried", 1)
        due = time.monotonic() + self.backoff_seconds * 2 ** (delivery.attempt - 1)
        with self._cond:
            heapq.heappush(self._queue, (due, next(self._order), delivery))

    def _post(self, target: WebhookTarget, body: bytes) -> bool:
        parts = urlsplit(target.url)
        connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(
            parts.hostname or "", parts.port, timeout=self.timeout_seconds
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Kustomer-Webhooks (emulator)",
        }
        if target.secret:
            headers[target.header] = target.secret
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            return 200 <= response.status < 300
        except (OSError, http.client.HTTPException):
            return False
        finally:
            with contextlib.suppress(OSError):
                connection.close()
