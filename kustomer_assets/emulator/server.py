"""A local HTTP server that behaves like the Kustomer REST API, hostile parts included.

Besides answering the endpoints a read-only connector uses, it reproduces what makes a real
extraction hard: capped page sizes, a deep-paging wall (missing `links.next`, or 400/404 on deep
pages), role-scoped keys, expired and wrong-pod keys, fixed-window org and search rate limits,
and injected faults (5xx, HTML bodies, 429s, truncated bodies, dropped connections, slow answers).
It can also make the org live: records churn between search page requests, are hard-deleted or
merged, drift to values of another type, another app spends the budget, the server restarts.
Stdlib only, so it can run anywhere the connector's tests run.

The parts live in sibling modules, one job each: `config` (settings), `auth` (keys and roles),
`rate_limits` and `faults`, `routing` and `routing_table`, `lists` (paging, list and by-id
endpoints), `search_handler` and `churn`, `admin` (ground truth, runtime control),
`http_handler`; `Emulator` here combines them and owns the server's lifecycle.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
import threading
import time
import traceback
from collections import Counter, OrderedDict
from http.server import ThreadingHTTPServer
from random import Random
from typing import Any

from kustomer_assets import loopback_http

from .auth import NO_SEARCH_KEY, NO_SEARCH_ROLES, READ_ROLES, SEARCH_ROLES, WRONG_POD_MESSAGE
from .config import (
    DEEP_PAGING_MODES,
    FAULT_KINDS,
    MERGED_LOOKUP_MODES,
    ChurnSpec,
    EmulatorConfig,
    normalize_churn,
)
from .dataset import Dataset, generate_dataset
from .http_handler import _Handler
from .rate_limits import _Budget
from .routing import RoutingMixin
from .webhooks import WebhookSender


class Emulator(RoutingMixin):
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
        self._route_failures: dict[str, tuple[str, int]] = {}
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
    "WRONG_POD_MESSAGE",
    "ChurnSpec",
    "Emulator",
    "EmulatorConfig",
    "normalize_churn",
    "serve_forever",
]
