"""Proactive client-side rate limiting.

Kustomer's budget is org-wide and shared with every other app using the org, so waiting for 429s
is not enough: the client spends at most its configured share per sliding 60 s window and also
pauses when the server says the real remaining budget is nearly gone.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC

ORG = "org"
SEARCH = "search"
RESET = "server's rate-limit reset"
"""What a wait is for when neither sliding window binds: the server said its budget is spent."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)  # httpx.Headers is case-insensitive already
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def reset_delay(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds until an x-ratelimit-reset moment; accepts epoch seconds/ms or seconds-to-reset."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if number != number:  # NaN
        return None
    wall = time.time() if now is None else now
    if number > 1e12:  # epoch milliseconds
        return max(0.0, number / 1000.0 - wall)
    if number > 1e9:  # epoch seconds
        return max(0.0, number - wall)
    return max(0.0, number)


def retry_after_delay(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for; accepts delta-seconds or an HTTP date."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    wall = time.time() if now is None else now
    return max(0.0, when.timestamp() - wall)


class SlidingWindow:
    """At most `limit` events in any `window` seconds; not locked, RateBudget serialises access."""

    def __init__(self, limit: int, window: float) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self.limit = limit
        self.window = window
        self._events: deque[float] = deque()

    def wait_time(self, now: float) -> float:
        while self._events and self._events[0] <= now - self.window:
            self._events.popleft()
        if len(self._events) < self.limit:
            return 0.0
        return max(0.0, self._events[0] + self.window - now)

    def record(self, now: float) -> None:
        self._events.append(now)


class RateBudget:
    """Org budget for every request plus a search budget for search POSTs, shared by threads."""

    def __init__(
        self,
        org_per_minute: int,
        search_per_minute: int,
        *,
        reserve: int = 2,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        on_wait: Callable[[float, str], None] | None = None,
    ) -> None:
        self.org = SlidingWindow(org_per_minute, window_seconds)
        self.search = SlidingWindow(search_per_minute, window_seconds)
        self.reserve = reserve
        self.window_seconds = window_seconds
        self._clock = clock
        self._sleep = sleep
        self._wall = wall_clock
        self._on_wait = on_wait
        """Told (seconds, which budget) before each pause, so a long wait is announced while
        it happens rather than explained after it."""
        self._lock = threading.Lock()
        self._blocked_until = float("-inf")
        self.last_remaining: int | None = None
        """The server's latest x-ratelimit-remaining, for progress logs."""
        self.remaining: dict[str, int] = {}
        """The latest x-ratelimit-remaining per budget: a search answer reports the search
        budget, any other the org budget, so one number alone would be mislabelled."""
        # Added when an injected sleep returns without the clock moving (a test's no-op sleep),
        # so waiting still terminates instead of spinning on the real clock.
        self._offset = 0.0

    def _now(self) -> float:
        return self._clock() + self._offset

    def acquire(self, kind: str = ORG) -> float:
        """Block until a request of `kind` may be sent; return the seconds spent waiting."""
        waited = 0.0
        for _ in range(100_000):
            with self._lock:
                now = self._now()
                org_wait = self.org.wait_time(now)
                search_wait = self.search.wait_time(now) if kind == SEARCH else 0.0
                wait = max(org_wait, search_wait, self._blocked_until - now, 0.0)
                if wait <= 0:
                    self.org.record(now)
                    if kind == SEARCH:
                        self.search.record(now)
                    return waited
            if self._on_wait is not None:
                binding = SEARCH if search_wait >= wait else ORG if org_wait >= wait else RESET
                self._on_wait(wait, binding)
            self._sleep_out(wait)
            waited += wait
        return waited  # pragma: no cover - only reachable with a clock that never advances

    def block(self, seconds: float) -> None:
        """Make every thread's next acquire wait `seconds` from now (after a 429, for example)."""
        if seconds <= 0:
            return
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._now() + seconds)

    def pause(self, seconds: float) -> None:
        """Hold every thread for `seconds` from now and sleep them out on this one.

        What a 429 asks for: the other threads must not spend the budget the server says is
        gone, and the thread that was told waits too. The sleep goes through the budget's own
        clock so that an injected no-op sleep still moves this budget's time forward."""
        before = self._now()
        self.block(seconds)
        self._sleep_out(before + seconds - self._now())

    def _sleep_out(self, seconds: float) -> None:
        """Sleep `seconds`; when the sleep returns without the clock moving (a test's no-op
        sleep), advance the offset instead, so waiting terminates rather than spins."""
        if seconds <= 0:
            return
        start = self._clock()
        self._sleep(seconds)
        elapsed = self._clock() - start
        if elapsed < seconds * 0.5:
            with self._lock:
                self._offset += seconds - max(elapsed, 0.0)

    def observe(self, headers: Mapping[str, str], kind: str = ORG) -> float:
        """Read x-ratelimit-* headers; when remaining <= reserve, hold requests until the reset.

        `kind` is the budget the answered request drew on last (search for search POSTs).
        Returns the pause imposed (0 when none)."""
        remaining_text = _header(headers, "x-ratelimit-remaining")
        if remaining_text is None:
            return 0.0
        try:
            remaining = float(remaining_text)
        except ValueError:
            return 0.0
        self.last_remaining = int(remaining)
        self.remaining[kind] = int(remaining)
        if remaining > self.reserve:
            return 0.0
        delay = reset_delay(_header(headers, "x-ratelimit-reset"), now=self._wall())
        if delay is None:
            delay = 1.0  # no reset advertised: slow down rather than stall a whole window
        delay = min(delay, self.window_seconds * 2)
        self.block(delay)
        return delay

    def describe_remaining(self) -> str:
        """'org budget left 5890, search budget left 570': each budget named, since a search
        answer reports the search budget and any other answer the org's."""
        parts = [
            f"{kind} budget left {self.remaining[kind]}"
            for kind in (ORG, SEARCH)
            if kind in self.remaining
        ]
        return ", ".join(parts) or "budget left unknown"
