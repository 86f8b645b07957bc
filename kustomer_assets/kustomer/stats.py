"""What one client has cost against the org's shared budget, counted while it runs.

The counters are shared by every part of the client (the transport counts requests, retries
and waits; paging and search count pages and window narrowings), so a run can report one
total per client in its metadata and progress lines.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


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
        """Add to counters by name; locked, because a client is shared by threads."""
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def as_dict(self) -> dict[str, int | float]:
        """A consistent snapshot of every counter, for run metadata."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}


__all__ = ["ClientStats"]
