"""What a long run says while it works: budget waits before they start, by-id progress, and
one line per window with the whole run's progress (which the demo reads back)."""

from __future__ import annotations

import logging

import pytest

from kustomer_assets.assets.load import PROGRESS_EVERY_RECORDS, ByIdProgress, WindowLoad
from kustomer_assets.assets.progress import (
    WINDOW_LINE,
    RunProgress,
    format_duration,
    run_progress,
)
from kustomer_assets.assets.raw import window_line
from kustomer_assets.entities import ENTITIES_BY_NAME
from kustomer_assets.kustomer.budget import ORG, RESET, SEARCH, RateBudget
from kustomer_assets_tests.kustomer.fake_server import FakeClock, FakeKustomer, make_client


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


def _logger(name: str) -> tuple[logging.Logger, Lines]:
    logger = logging.getLogger(f"kustomer_assets_tests.progress.{name}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    lines = Lines()
    logger.handlers[:] = [lines]
    return logger, lines


def test_budget_names_the_budget_it_waits_for_before_sleeping() -> None:
    clock = FakeClock()
    told: list[tuple[float, str, int]] = []
    budget = RateBudget(
        10,
        1,
        clock=clock.monotonic,
        sleep=clock.sleep,
        wall_clock=clock.time,
        on_wait=lambda seconds, which: told.append((seconds, which, len(clock.sleeps))),
    )
    budget.acquire(SEARCH)
    assert budget.acquire(SEARCH) == pytest.approx(60.0)
    assert told == [(pytest.approx(60.0), SEARCH, 0)]  # announced with no sleep done yet
    budget.block(5)
    budget.acquire(ORG)
    assert told[-1][:2] == (pytest.approx(5.0), RESET)


def test_client_announces_a_long_wait_at_info_and_a_short_one_at_debug() -> None:
    clock = FakeClock(wall=1_800_000_000.0)  # 2027-01-15 08:00:00 UTC
    logger, lines = _logger("client")
    with make_client(FakeKustomer(), clock, logger=logger, org_requests_per_minute=1) as client:
        client.current_user()
        client.current_user()
    assert lines.at(logging.INFO) == ["Waiting 60 s for the org budget, resuming 08:01:00 UTC"]
    client._announce_wait(0.4, SEARCH)
    assert lines.at(logging.DEBUG)[-1].startswith("Waiting 0.4 s for the search budget")


def test_remaining_budget_is_labelled_by_the_budget_the_server_reported() -> None:
    budget = RateBudget(100, 10)
    assert budget.describe_remaining() == "budget left unknown"
    budget.observe({"x-ratelimit-remaining": "57"}, SEARCH)
    assert budget.describe_remaining() == "search budget left 57"
    budget.observe({"x-ratelimit-remaining": "940"}, ORG)
    assert budget.describe_remaining() == "org budget left 940, search budget left 57"


def test_window_line_carries_the_run_progress_and_reads_back() -> None:
    clock = FakeClock()
    progress = RunProgress(total_windows=10, clock=clock.monotonic, started=0.0)
    progress.window_done(5, 1, resumed=True)  # an earlier attempt's window: no pace
    clock.now = 30.0
    progress.window_done(1_234, 3)
    load = WindowLoad(
        window="2026-11-02/2026-11-09", rows=1_234, reported_total=1_234, verified_by="counts"
    )
    with make_client(FakeKustomer(), clock) as client:
        line = window_line(ENTITIES_BY_NAME["conversations"], 2, 5, load, 3, client, progress)
    assert line.startswith("conversations window 2/5 2026-11-02/2026-11-09: 1,234 rows, 3 requests")
    assert "API counted 1,234; verified by counts" in line
    assert line.endswith("run so far 1,239 rows, 4 requests, 2/10 windows (20%), ETA 4 min 00 s")
    parsed = WINDOW_LINE.match(line)
    assert parsed is not None
    assert parsed.group("table", "days", "rows", "done", "total", "percent", "eta") == (
        "conversations",
        "2026-11-02/2026-11-09",
        "1,234",
        "2",
        "10",
        "20",
        "4 min 00 s",
    )


def test_one_tracker_per_run_and_a_skipped_table_leaves_the_total() -> None:
    progress = run_progress("run-a", lambda: 7)
    assert run_progress("run-a", lambda: 99) is progress
    progress.window_done(1, 1)
    progress.windows_dropped(3)
    assert (progress.windows_done, progress.total_windows) == (1, 4)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0 s"), (59, "59 s"), (61, "1 min 01 s"), (7260, "2 h 01 min")]
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_by_id_phases_report_every_n_records() -> None:
    logger, lines = _logger("by_id")
    with make_client(FakeKustomer()) as client:
        phase = ByIdProgress(
            "satisfaction", "2026-11-02/2026-11-09", "CSAT responses", 1_234, logger
        )
        phase.start()
        for done in range(100, 1_235, 100):
            phase.advance(done, client)
        phase.advance(1_234, client)
    step = PROGRESS_EVERY_RECORDS
    assert lines.at(logging.INFO)[0] == (
        "satisfaction 2026-11-02/2026-11-09: fetching 1234 CSAT responses, one request each"
    )
    progress = lines.at(logging.INFO)[1:]
    assert [line.split(": ")[1].split(" ")[0] for line in progress] == [
        f"{n}/1234" for n in range(step, 1_234, step)
    ]
