"""How far a run is: windows done out of all the run's windows, rows and requests so far, ETA.

A backfill of a year is hours of quiet API work; a line per window that says how much of the
whole run is done, and when it should end, is what tells a user it is working (and what the
demo prints). One tracker per run id lives in the process: the definitions use the in-process
executor, so that process runs every table of the run and the tracker sees all its windows.
Under another executor each step process sees only its own windows, and the percentage
understates.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

KEEP_RUNS = 32
"""Trackers kept per process: a long-lived process (tests, `dg.materialize` in a loop) runs
many runs, and only the current one's tracker is ever read."""


@dataclass
class RunProgress:
    total_windows: int
    started: float | None = None
    """`clock()` when the run's first table began; the ETA's pace is measured from it."""
    windows_done: int = 0
    windows_resumed: int = 0
    """Windows an earlier attempt wrote: done at once, so they do not count towards the ETA."""
    rows: int = 0
    requests: int = 0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = self.clock()

    def window_done(self, rows: int, requests: int, *, resumed: bool = False) -> None:
        with self._lock:
            self.windows_done += 1
            # A table the count did not foresee (a custom job) must not push past 100%.
            self.total_windows = max(self.total_windows, self.windows_done)
            self.windows_resumed += int(resumed)
            self.rows += rows
            self.requests += requests

    def windows_dropped(self, count: int) -> None:
        """Windows that will not be loaded (an entity skipped for a missing optional role):
        off the total, so the run still reaches 100%."""
        with self._lock:
            self.total_windows = max(self.windows_done, self.total_windows - count)

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.windows_done / max(self.total_windows, 1)))

    def eta_seconds(self) -> float | None:
        """Remaining windows at the mean pace of the windows loaded so far (None before one)."""
        loaded = self.windows_done - self.windows_resumed
        if loaded <= 0:
            return None
        remaining = max(self.total_windows - self.windows_done, 0)
        return (self.clock() - (self.started or 0.0)) / loaded * remaining

    def describe(self) -> str:
        eta = self.eta_seconds()
        return (
            f"run so far {plural(self.rows, 'row')}, {plural(self.requests, 'request')}, "
            f"{self.windows_done}/{self.total_windows} windows ({self.percent}%)"
            + ("" if eta is None else f", ETA {format_duration(eta)}")
        )


def plural(count: int, one: str, many: str | None = None) -> str:
    """'1 request', '2,048 requests': the log is read by people."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def format_duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '2 h 05 min': precise where it matters, short where it does not."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


WINDOW_LINE = re.compile(
    r"^(?P<table>\S+) window (?P<number>\d+)/(?P<windows>\d+) (?P<days>\S+): "
    r"(?P<rows>[\d,]+) rows?, (?P<requests>[\d,]+) requests?.*; run so far "
    r"(?P<run_rows>[\d,]+) rows?, (?P<run_requests>[\d,]+) requests?, "
    r"(?P<done>\d+)/(?P<total>\d+) windows \((?P<percent>\d+)%\)(?:, ETA (?P<eta>.+))?$"
)
"""Reads `raw.window_line` back: the demo prints its progress from the run's log file."""


_RUNS: OrderedDict[str, RunProgress] = OrderedDict()
_RUNS_LOCK = threading.Lock()


def run_progress(run_id: str, total_windows: Callable[[], int]) -> RunProgress:
    """The run's tracker, created by the run's first table (which counts every window)."""
    with _RUNS_LOCK:
        progress = _RUNS.get(run_id)
        if progress is None:
            progress = _RUNS[run_id] = RunProgress(total_windows=max(total_windows(), 1))
            while len(_RUNS) > KEEP_RUNS:
                _RUNS.popitem(last=False)
        return progress
