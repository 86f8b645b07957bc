"""Fixed-window org and search rate limits, and the `x-ratelimit-*` headers that report them.

Windows are aligned to the epoch like Kustomer's; `consume` spends budget as another app on the
same org would.
"""

from __future__ import annotations

import math
import threading
import time

from .base import EmulatorBase


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


class RateLimitsMixin(EmulatorBase):
    """Rate-limit headers and budget spending of `Emulator` (mixed into it)."""

    def consume(self, org: int = 0, search: int = 0) -> dict[str, dict[str, float]]:
        """Spend budget from the current fixed windows; returns what is left and when it resets."""
        now = time.time()
        org_left, org_reset = self._org.consume(int(org), now)
        search_left, search_reset = self._search.consume(int(search), now)
        return {
            "remaining": {"org": org_left, "search": search_left},
            "reset": {"org": org_reset, "search": search_reset},
        }

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
