"""The webhook receiver: a small threaded stdlib HTTP endpoint Kustomer POSTs events to.

Why a separate process and not a Dagster route: the Dagster webserver has no plugin point for
extra HTTP routes, and a receiver must keep accepting events while the webserver or the code
location restarts. It only writes the event log (`store`); the `kustomer_webhook_events`
sensor, in the code location, turns events into runs.

Per request, in order:
1. `POST <WEBHOOK_PATH>` only (`GET /healthz` answers `{"status": "ok"}` for a proxy's health
   check); anything else is 404 / 405.
2. The shared secret in the webhook's custom header (`X-Kustomer-Webhook-Secret` by default),
   compared in constant time with KUSTOMER_WEBHOOK_SECRET: 401 without it. Kustomer documents
   no signature scheme, so this header is the webhook's only credential; it is never logged,
   echoed or stored (the raw body is stored, the headers are not).
3. A body of at most `max_body_bytes` (KUSTOMER_WEBHOOK_MAX_BODY_BYTES, 1 MiB) with a
   Content-Length: 413 / 411 otherwise, before reading it.
4. JSON with an object id (`events.parse_event`): 400 otherwise, and no row.
5. One committed SQLite row, then 201 `{"status": "accepted", "seq": n}`, or 200
   `{"status": "duplicate", "seq": n}` for a redelivery. Nothing slower happens before the
   answer, so Kustomer's delivery timeout is never the limit.

It speaks plain HTTP and binds 127.0.0.1 by default: put a TLS-terminating reverse proxy
(Caddy, nginx) in front of it for Kustomer to reach (README, "Push refresh").
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import signal
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kustomer_assets import loopback_http
from kustomer_assets.environment import positive_int_env
from kustomer_assets.webhooks.events import MalformedEvent, parse_event
from kustomer_assets.webhooks.store import WebhookStore, retention, webhook_store_folder

ENV_SECRET = "KUSTOMER_WEBHOOK_SECRET"
ENV_HEADER = "KUSTOMER_WEBHOOK_HEADER"
ENV_MAX_BODY = "KUSTOMER_WEBHOOK_MAX_BODY_BYTES"
DEFAULT_HEADER = "X-Kustomer-Webhook-Secret"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""A conversation snapshot with its custom attributes is a few kB; a MiB leaves room for big
custom objects and refuses a body meant to fill the disk."""
DEFAULT_PORT = 8756
WEBHOOK_PATH = "/kustomer/webhook"
HEALTH_PATH = "/healthz"
MIN_SECRET_LENGTH = 16
PRUNE_EVERY_SECONDS = 3600.0
DRAIN_LIMIT_BYTES = 8 * 1024 * 1024
"""A refused body up to this size is read and discarded before the answer (see `_drain`)."""

log = logging.getLogger("kustomer_assets.webhooks.receiver")


class ReceiverSettingsError(ValueError):
    """A setting the receiver cannot start with; the message names the variable to fix."""


def secret_from_env() -> str:
    secret = os.getenv(ENV_SECRET) or ""
    if not secret.strip():
        raise ReceiverSettingsError(
            f"{ENV_SECRET} is not set: generate one (python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))') and give the same value to the webhook's "
            f"custom header {DEFAULT_HEADER} in Kustomer."
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise ReceiverSettingsError(
            f"{ENV_SECRET} is shorter than {MIN_SECRET_LENGTH} characters: it is the "
            "webhook's only credential, use a random one (secrets.token_urlsafe(32))."
        )
    return secret


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WebhookReceiver:
    """The HTTP server in a daemon thread; a context manager, restartable on the same port."""

    def __init__(
        self,
        store: WebhookStore,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        header: str = DEFAULT_HEADER,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        keep_for: timedelta | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not secret:
            raise ReceiverSettingsError(f"{ENV_SECRET} is empty: the receiver needs a secret.")
        self.store = store
        self._secret = secret.encode("utf-8")
        self.header = header
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.keep_for = keep_for
        self.clock = clock
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._pruner: threading.Thread | None = None
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def __repr__(self) -> str:  # never the secret
        return f"WebhookReceiver(url={self.url!r}, store={str(self.store.path)!r})"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{WEBHOOK_PATH}"

    @property
    def stats(self) -> dict[str, int]:
        with self._stats_lock:
            return dict(self._stats)

    def count(self, key: str) -> None:
        with self._stats_lock:
            self._stats[key] += 1

    def secret_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode("utf-8"), self._secret)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> WebhookReceiver:
        if self._server is not None:
            return self
        handler = type("KustomerWebhookHandler", (_Handler,), {"receiver": self})
        server = self._bind(handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._stopping.clear()
        self._thread = loopback_http.serve_in_thread(server)
        if self.keep_for is not None:
            self._pruner = threading.Thread(target=self._prune_loop, daemon=True)
            self._pruner.start()
        log.info("Kustomer webhook receiver on %s, events in %s", self.url, self.store.path)
        return self

    def _bind(self, handler: type[_Handler]) -> ThreadingHTTPServer:
        return loopback_http.bind(self.host, self.port, handler, attempts=40)

    def _open_connections(self) -> list[socket.socket]:
        with self._conns_lock:
            return list(self._conns)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        loopback_http.shut_down(server, self._open_connections, self._thread)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _prune_loop(self) -> None:
        while True:
            assert self.keep_for is not None
            try:
                removed = self.store.prune(self.clock() - self.keep_for)
                if removed:
                    log.info("Pruned %d webhook events older than %s", removed, self.keep_for)
            except Exception as error:  # pruning is housekeeping; never stop receiving for it
                log.warning("Could not prune old webhook events: %s", type(error).__name__)
            if self._stopping.wait(PRUNE_EVERY_SECONDS):
                return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "KustomerAssetsWebhooks/1.0"
    sys_version = ""
    timeout = 15  # a client that stops sending mid-body does not pin a thread
    receiver: WebhookReceiver

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.receiver._conns_lock:
            self.receiver._conns.add(self.connection)

    def finish(self) -> None:
        with self.receiver._conns_lock:
            self.receiver._conns.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    # Access logs are ours (below): the default ones print the request line, whose query string
    # could hold a secret a misconfigured webhook put in its URL.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return

    def log_error(self, format: str, *args: Any) -> None:
        code = args[0] if args and isinstance(args[0], int) else "?"
        log.warning("request refused by the HTTP parser (status %s)", code)

    def _path(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def _answer(self, status: int, payload: dict[str, Any], *, close: bool = False) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            # A refusal ends the connection: its body may be unread (see `_drain`).
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        log.info(
            "%s %s -> %d (%d bytes in, %.1f ms)",
            self.command,
            self._path(),
            status,
            int(self.headers.get("Content-Length") or 0) if self.headers else 0,
            (time.monotonic() - self._started) * 1000,
        )

    def _refuse(self, status: int, reason: str, stat: str, *, body_read: bool = False) -> None:
        self.receiver.count(stat)
        if not body_read:
            self._drain()
        self._answer(status, {"status": "refused", "error": reason}, close=True)

    def _drain(self) -> None:
        """Discard the unread body (up to DRAIN_LIMIT_BYTES) before answering a refusal.

        Closing a socket that still holds unread data makes the kernel reset the connection,
        and the client may lose the answer to the reset: it would see a dropped connection
        instead of a 401 or 413 that says what to fix. Bigger bodies are cut off unread.
        """
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if length <= 0 or length > DRAIN_LIMIT_BYTES:
            return
        with contextlib.suppress(OSError):
            self.connection.settimeout(2.0)
            while length > 0:
                chunk = self.rfile.read(min(65536, length))
                if not chunk:
                    return
                length -= len(chunk)

    def do_GET(self) -> None:
        self._started = time.monotonic()
        if self._path() == HEALTH_PATH:
            self._answer(200, {"status": "ok"})
        elif self._path() == WEBHOOK_PATH:
            self._refuse(405, "POST Kustomer events here", "refused.method")
        else:
            self._refuse(404, "no such route", "refused.not_found")

    def do_POST(self) -> None:
        self._started = time.monotonic()
        receiver = self.receiver
        if self._path() != WEBHOOK_PATH:
            self._refuse(404, f"POST events to {WEBHOOK_PATH}", "refused.not_found")
            return
        if not receiver.secret_matches(self.headers.get(receiver.header)):
            self._refuse(401, f"missing or wrong {receiver.header} header", "refused.unauthorized")
            return
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._refuse(411, "send a Content-Length, not a chunked body", "refused.length")
            return
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self._refuse(411, "Content-Length required", "refused.length")
            return
        if length > receiver.max_body_bytes:
            self._refuse(413, f"body over {receiver.max_body_bytes} bytes", "refused.too_large")
            return
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) < length:
            self._refuse(
                400, "body shorter than its Content-Length", "refused.malformed", body_read=True
            )
            return
        try:
            event = parse_event(body)
        except MalformedEvent as error:
            receiver.count("refused.malformed")
            self._answer(400, {"status": "refused", "error": str(error)})
            return
        try:
            inserted, seq = receiver.store.add(event, body, receiver.clock())
        except sqlite3.Error as error:
            # Not acknowledged, so Kustomer delivers it again once the disk is back.
            log.error("could not store the event: %s", type(error).__name__)
            self._refuse(503, "event log unavailable, retry later", "refused.store", body_read=True)
            return
        if inserted:
            receiver.count("accepted")
            if event.problems:
                log.info("event #%d stored with problems: %s", seq, "; ".join(event.problems))
            self._answer(201, {"status": "accepted", "seq": seq})
        else:
            receiver.count("duplicate")
            self._answer(200, {"status": "duplicate", "seq": seq})

    def do_PUT(self) -> None:
        self._started = time.monotonic()
        self._refuse(405, "POST Kustomer events", "refused.method")

    do_PATCH = do_DELETE = do_PUT


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_command(host: str, port: int, store_folder: str | None = None) -> int:
    """`kustomer-assets webhooks`: serve until interrupted; 2 with one sentence on bad settings."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        secret = secret_from_env()
        folder = Path(store_folder).expanduser() if store_folder else webhook_store_folder()
        if folder is None:
            raise ReceiverSettingsError(
                "KUSTOMER_DELTA_ROOT is an object store: set KUSTOMER_WEBHOOK_STORE to a local "
                "folder for the webhook event log (the Dagster code location must see it too)."
            )
        max_body = positive_int_env(ENV_MAX_BODY, DEFAULT_MAX_BODY_BYTES)
        keep_for = retention()
    except ValueError as error:
        print(f"kustomer-assets webhooks: {error}", flush=True)
        return 2
    header = (os.getenv(ENV_HEADER) or "").strip() or DEFAULT_HEADER
    try:
        store = WebhookStore(folder)
    except (OSError, sqlite3.Error) as error:
        print(f"kustomer-assets webhooks: cannot open the event log in {folder} ({error}).")
        return 2
    receiver = WebhookReceiver(
        store,
        secret,
        host=host,
        port=port,
        header=header,
        max_body_bytes=max_body,
        keep_for=keep_for,
    )
    try:
        receiver.start()
    except OSError as error:
        print(f"kustomer-assets webhooks: cannot listen on {host}:{port} ({error.strerror}).")
        store.close()
        return 2
    print(
        f"Kustomer webhook receiver on {receiver.url} (header {header}), events in "
        f"{store.path} (Ctrl-C stops it)",
        flush=True,
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        store.close()
    return 0
