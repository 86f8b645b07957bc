"""The state every part of `Emulator` shares, declared once so each mixin can use it, and the
request counters (`stats`).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import socket
    from http.server import ThreadingHTTPServer
    from random import Random

    from .config import EmulatorConfig
    from .dataset import Dataset
    from .rate_limits import _Budget
    from .webhooks import WebhookSender


class EmulatorBase:
    """Attributes `Emulator.__init__` sets, and the counters; the mixins build on this."""

    config: EmulatorConfig
    _churn: dict[str, dict[str, int]]
    _churn_rng: Random
    _churned: dict[str, set[str]]
    _churn_lock: threading.Lock
    host: str
    port: int
    base_url: str
    dataset: Dataset
    errors: list[str]
    _stats: Counter[str]
    _stats_lock: threading.Lock
    _fault_lock: threading.Lock
    _route_failures: dict[str, tuple[str, int]]
    _fault_rng: Random
    _org: _Budget
    _search: _Budget
    _search_cache: OrderedDict[tuple[str, int, int], list[dict[str, Any]]]
    _cache_lock: threading.Lock
    _server: ThreadingHTTPServer | None
    _thread: threading.Thread | None
    _conns: set[socket.socket]
    _conns_lock: threading.Lock
    _generation: int
    webhooks: WebhookSender

    @property
    def stats(self) -> dict[str, int]:
        with self._stats_lock:
            return dict(self._stats)

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self._stats[key] += n
