"""Proactive client-side rate limiting that follows the server's own limits.

Kustomer has two budgets: the org's (every request; shared with every other app and key of the
org, so the connector takes a configurable share of it) and the search budget of the API key
(100 searches/min; the key is the connector's own, so it may use nearly all of it). Waiting for
429s is not enough. The client sends at most its share of each budget in any rate window (a
sliding window, so no window the server counts can hold more) and follows what every answer's
`x-ratelimit-*` headers say about that budget:

- `x-ratelimit-limit` below the configured share: the lower one is that budget's share.
- `x-ratelimit-reset` (epoch seconds or milliseconds, or seconds until the reset: a value above
  10^9 is an epoch) says when the server's window resets, and so how long it is: the longest time
  to a reset seen, in whole seconds, at most 60 (Kustomer's minute). The share is spent per that
  window, so a server with shorter windows is not left idle. Until a budget's own answers have
  shown its window, it takes the other budget's (Kustomer counts both per minute): a client
  that only searches hears only of the search budget, yet spends the org's too.
- `x-ratelimit-remaining` lower than our own count allows (another app spent it): requests wait
  until the reset instead of being sent into a 429. What the server reported is reduced by every
  request it may not have counted yet (sent after the reporting one, or still in flight when the
  report arrived), so threads sharing the budget cannot overshoot it either.

Threads share it, and a thread can give way (`yielding`): a by-id load running beside the run's
steps (`assets/background.py`) must not make them wait. Left alone it spent each window's org
share in its first seconds, and every step's request then waited for the next window (a
one-request list step waited 56 s; a searched step stalled on the org budget its searches also
draw on). So a yielding thread, while another thread sends requests (one in the past org
window), leaves room for them: a window's searches (as many as the search budget allows, at
most half the org's) while that thread searches, else a fiftieth of the org's; it may fill
the rest at once. While no other thread sends, it is paced instead (one request per
`window / limit` seconds), so that the slots it holds free one by one: a step that starts
sending then waits one gap at most (0.12 s at 500 a minute), not for a window's burst to
expire. And it sends nothing while another thread waits for the org window.
"""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC

ORG = "org"
SEARCH = "search"
RESET = "server's rate-limit reset"
"""What a wait is for when neither sliding window binds: the server said its budget is spent."""

YIELD_POLL = 0.05
"""Seconds a yielding thread waits to look again while another thread waits for the org window."""

MAX_WAITS = 100_000
"""Waits of one request after which the clock is taken to be stuck (polls not counted)."""

_THREAD = threading.local()


@contextmanager
def yielding() -> Iterator[None]:
    """Requests this thread sends give way to the process's other requests (see module doc)."""
    before = getattr(_THREAD, "yielding", False)
    _THREAD.yielding = True
    try:
        yield
    finally:
        _THREAD.yielding = before


def _yields() -> bool:
    return getattr(_THREAD, "yielding", False)


ROUNDING = 1.0
"""Reset headers are whole seconds: a request sent this long before a reset may be counted in
the next window, so it stays counted against the budget when the window rolls."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)  # httpx.Headers is case-insensitive already
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _number(headers: Mapping[str, str], name: str) -> int | None:
    text = _header(headers, name)
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return None if value != value or math.isinf(value) else int(value)


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
    """At most `limit` events in any `window` seconds; not locked, RateBudget serialises access.

    `limit` and `window` start as configured and follow the server (`follow`): never above the
    configured share, and events are kept for the configured window so that a window learnt
    short and then longer still counts them."""

    def __init__(self, limit: int, window: float) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self.configured = limit
        self.limit = limit
        self.window = window
        self.span = window
        self._events: deque[float] = deque()

    def follow(self, server_limit: int | None, window: float) -> None:
        """Adopt the server's limit when it is lower than ours, and its window length."""
        known = server_limit is not None and server_limit > 0
        self.limit = min(self.configured, server_limit) if known else self.configured
        self.window = min(window, self.span)

    def wait_time(self, now: float, limit: int | None = None) -> float:
        """Seconds until one more event fits; `limit`: a lower limit for this event."""
        limit = self.limit if limit is None else max(1, min(limit, self.limit))
        while self._events and self._events[0] <= now - self.span:
            self._events.popleft()
        inside = 0
        for moment in reversed(self._events):
            if moment <= now - self.window:
                break
            inside += 1
        if inside < limit:
            return 0.0
        # The event whose expiry lets one more in: the limit-th newest.
        return max(0.0, self._events[len(self._events) - limit] + self.window - now)

    def record(self, now: float) -> None:
        self._events.append(now)


@dataclass(frozen=True)
class Ticket:
    """One request let through: its place in the sending order, and what it waited."""

    seq: int
    kind: str
    waited: float = 0.0


class ServerView:
    """What the server last said about one budget, and the requests it may not have counted."""

    def __init__(self, window: float) -> None:
        self.configured_window = window
        self.window = window
        """The server's window length: the longest time to a reset seen (`learnt`), or the
        other budget's, or the configured one; RateBudget keeps it current."""
        self.limit: int | None = None
        self.remaining: int | None = None
        self.reset_at = -math.inf
        self.seq = -1
        """The request whose answer `remaining` came from: an older answer is stale."""
        self.longest_reset = 0.0
        self.pending: dict[int, tuple[float, bool]] = {}
        """seq -> (sent at, answered) of requests on this budget not known to be counted."""

    @property
    def learnt(self) -> float | None:
        """The window length the server's answers showed (whole seconds), None before one."""
        if self.longest_reset <= 0:
            return None
        return min(self.configured_window, max(1.0, math.ceil(self.longest_reset - 0.01)))

    def left(self) -> int | None:
        """What the server has left for us, at most: None when it never said."""
        return None if self.remaining is None else self.remaining - len(self.pending)

    def roll(self, now: float) -> None:
        """Past the reset, the server's window is new: its whole limit again (whoever spends
        some, the next answer says), minus what may count in it already."""
        if self.reset_at == -math.inf or now < self.reset_at:
            return
        old = self.reset_at
        self.reset_at = old + (math.floor((now - old) / self.window) + 1) * self.window
        self.remaining = self.limit
        cutoff = old - ROUNDING
        self.pending = {s: p for s, p in self.pending.items() if not (p[1] and p[0] < cutoff)}

    def answered(self, seq: int) -> None:
        if seq in self.pending:  # kept only while there is a reported remaining to reduce
            self.pending[seq] = (self.pending[seq][0], True)
            if self.remaining is None:
                del self.pending[seq]

    def report(self, seq: int, remaining: int, limit: int | None, delay: float, now: float) -> None:
        """An answer's headers; ignored when a later request's answer was already read."""
        if limit is not None and limit > 0:
            self.limit = limit
        if seq <= self.seq:
            return
        self.seq, self.remaining, self.reset_at = seq, remaining, now + delay
        # Answered requests sent before this one are in its count; the others may not be.
        self.pending = {s: p for s, p in self.pending.items() if s > seq or not p[1]}

    def wait(self, now: float, reserve: int) -> float:
        """Seconds until the reset when no more than `reserve` is left (less than the limit,
        so that a budget smaller than the reserve still lets one request through a window)."""
        left = self.left()
        if left is None or left > min(reserve, (self.limit or reserve + 1) - 1):
            return 0.0
        return max(0.0, self.reset_at - now)


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
        self.servers = {ORG: ServerView(window_seconds), SEARCH: ServerView(window_seconds)}
        """What the server's headers said about each budget."""
        self.reserve = reserve
        """Left to the server: requests wait for the reset when it reports this many or fewer."""
        self.window_seconds = window_seconds
        self._clock = clock
        self._sleep = sleep
        self._wall = wall_clock
        self._on_wait = on_wait
        """Told (seconds, which budget) before each pause, so a long wait is announced while
        it happens rather than explained after it."""
        self._lock = threading.Lock()
        self._blocked_until = float("-inf")
        self._last_other = float("-inf")
        self._last_other_search = float("-inf")
        """When a request (a search) of a thread that does not yield was last let through."""
        self._next_yielding = float("-inf")
        """The earliest moment a yielding thread's next request may go (the pacing)."""
        self._org_waiters: set[int] = set()
        """Threads that do not yield, waiting now for the org window: yielding ones hold off."""
        self._seq = 0
        self.last_remaining: int | None = None
        """The server's latest x-ratelimit-remaining, for progress logs."""
        self.remaining: dict[str, int] = {}
        """The latest x-ratelimit-remaining per budget: a search answer reports the search
        budget, any other the org budget, so one number alone would be mislabelled."""
        self._offset = 0.0  # see _sleep_out

    def _now(self) -> float:
        return self._clock() + self._offset

    def _views(self, kind: str) -> list[ServerView]:
        return [self.servers[ORG], self.servers[SEARCH]] if kind == SEARCH else [self.servers[ORG]]

    def take(self, kind: str = ORG, on_wait: Callable[[float, str], None] | None = None) -> Ticket:
        """Block until a request of `kind` may be sent; the ticket to hand to `observe` (or
        `done` when no answer came), so the budget knows what the server has not counted.
        `on_wait` replaces the budget's own announcer (a budget shared by clients)."""
        announce = on_wait or self._on_wait
        gives_way = _yields()
        me = threading.get_ident()
        waited = 0.0
        waits = 0
        try:
            while waits < MAX_WAITS:
                with self._lock:
                    # Counted among the waiters until the lock is held again, so that a
                    # yielding thread cannot take the slot between this one's wake-up and turn.
                    self._org_waiters.discard(me)
                    now = self._now()
                    views = self._views(kind)
                    for view in views:
                        view.roll(now)
                    org_wait = self.org.wait_time(now, self._org_limit_for(gives_way, now))
                    search_wait = self.search.wait_time(now) if kind == SEARCH else 0.0
                    server_wait = max(view.wait(now, self.reserve) for view in views)
                    wait = max(org_wait, search_wait, server_wait, self._blocked_until - now, 0.0)
                    held_off = gives_way and wait <= 0 and bool(self._org_waiters)
                    pacing = self._next_yielding - now if self._paced(gives_way, now) else 0.0
                    if wait <= 0 and pacing <= 0 and not held_off:
                        return self._issue(kind, views, now, waited, gives_way)
                    org_side = max(org_wait, self.servers[ORG].wait(now, self.reserve))
                    if not gives_way and 0 < org_side >= wait:
                        self._org_waiters.add(me)
                if held_off:  # another thread waits for the org window: it goes first
                    self._sleep(YIELD_POLL)  # not `_sleep_out`: a poll must not move the clock
                    waited += YIELD_POLL
                    continue
                if announce is not None and wait > 0:  # the pacing's gaps go unannounced
                    binding = SEARCH if search_wait >= wait else ORG if org_wait >= wait else RESET
                    announce(max(wait, pacing), binding)
                self._sleep_out(max(wait, pacing))
                waited += max(wait, pacing)
                waits += 1
        finally:
            if me in self._org_waiters:
                with self._lock:
                    self._org_waiters.discard(me)
        raise RuntimeError("rate budget clock never advanced")  # pragma: no cover

    def _issue(
        self, kind: str, views: list[ServerView], now: float, waited: float, gives_way: bool
    ) -> Ticket:
        """Count a request let through (the lock held) in both windows and the server views."""
        self._seq += 1
        self.org.record(now)
        if kind == SEARCH:
            self.search.record(now)
        if not gives_way:
            self._last_other = now
            if kind == SEARCH:
                self._last_other_search = now
        else:
            self._next_yielding = now + self.org.window / self.org.limit
        for view in views:
            view.pending[self._seq] = (now, False)
        return Ticket(self._seq, kind, waited)

    def _org_limit_for(self, gives_way: bool, now: float) -> int | None:
        """The org window's limit for a request of a thread that does (not) yield: the room it
        leaves the others while they send (see the module doc)."""
        if not gives_way:
            return None
        limit = self.org.limit
        if now - self._last_other_search < self.search.window:
            return limit - min(self.search.limit, limit // 2)
        if now - self._last_other < self.org.window:
            return limit - max(1, limit // 50)
        return None

    def _paced(self, gives_way: bool, now: float) -> bool:
        """Whether a request of this thread waits for the pacing's gap: a yielding one while
        no other thread sends (see the module doc)."""
        return gives_way and now - self._last_other >= self.org.window

    def acquire(self, kind: str = ORG) -> float:
        """`take` for a caller that reads no answers: the seconds spent waiting."""
        ticket = self.take(kind)
        self.done(ticket)
        return ticket.waited

    def done(self, ticket: Ticket) -> None:
        """The request of `ticket` was answered (or failed): it no longer is in flight."""
        with self._lock:
            for view in self._views(ticket.kind):
                view.answered(ticket.seq)

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

    def observe(
        self,
        headers: Mapping[str, str],
        kind: str = ORG,
        ticket: Ticket | None = None,
        *,
        status: int = 200,
    ) -> float:
        """Read the x-ratelimit-* headers of the answer (`status`) to `ticket` (the latest
        request when None) on budget `kind`; the seconds requests now wait for the server's
        reset (0: none). Only a 2xx teaches the window's length."""
        if ticket is not None:
            self.done(ticket)
        remaining = _number(headers, "x-ratelimit-remaining")
        if remaining is None:
            return 0.0
        limit = _number(headers, "x-ratelimit-limit")
        with self._lock:
            now = self._now()
            advertised = reset_delay(_header(headers, "x-ratelimit-reset"), now=self._wall())
            # No reset advertised: slow down rather than stall a whole window.
            delay = min(1.0 if advertised is None else advertised, self.window_seconds * 2)
            seq = self._seq if ticket is None else ticket.seq
            wait = 0.0
            budgets = self._reported(kind, limit, status)
            if len(budgets) > 1:
                limit = None  # the limit of one of them, but which is unknown
            for reported in budgets:
                view = self.servers[reported]
                if 200 <= status < 300 and advertised is not None and delay > 0:
                    view.longest_reset = max(view.longest_reset, delay)
                view.report(seq, remaining, limit, delay, now)
                self.last_remaining = remaining
                self.remaining[reported] = remaining
            self._follow()
            for reported in budgets:
                wait = max(wait, self.servers[reported].wait(now, self.reserve))
            return wait

    def _follow(self) -> None:
        """Both sliding windows follow the server: its limits, and its window lengths (a budget
        not heard of yet takes the other's, see the module doc)."""
        org, search = self.servers[ORG], self.servers[SEARCH]
        for view, other, window in ((org, search, self.org), (search, org, self.search)):
            view.window = view.learnt or other.learnt or view.configured_window
            window.follow(view.limit, view.window)

    def _reported(self, kind: str, limit: int | None, status: int) -> list[str]:
        """The budgets an answer's headers describe. A search's 2xx reports the search budget,
        any other answer the org's; but a search's error answer may report either (the one
        spent, for a 429), so its limit tells which, and a 429 that does not tell holds both
        until its reset: a search needs both."""
        if kind != SEARCH:
            return [ORG]
        if 200 <= status < 300:
            return [SEARCH]
        matching = [k for k in (ORG, SEARCH) if limit and self.servers[k].limit == limit]
        if len(matching) == 1:
            return matching
        return [ORG, SEARCH] if status == 429 else []

    def describe_remaining(self) -> str:
        """'org budget left 5890, search budget left 570': each budget named, since a search
        answer reports the search budget and any other answer the org's."""
        parts = [
            f"{kind} budget left {self.remaining[kind]}"
            for kind in (ORG, SEARCH)
            if kind in self.remaining
        ]
        return ", ".join(parts) or "budget left unknown"
