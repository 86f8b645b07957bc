"""Proactive rate budgets: sliding windows, header-driven pauses, injectable time."""

from __future__ import annotations

import threading
import time

import pytest

from kustomer_assets.kustomer.budget import (
    ORG,
    SEARCH,
    RateBudget,
    reset_delay,
    retry_after_delay,
)
from kustomer_assets_tests.kustomer.fake_server import FakeClock, FakeKustomer, make_client


def _budget(clock: FakeClock, org: int = 5, search: int = 2, reserve: int = 2) -> RateBudget:
    return RateBudget(
        org,
        search,
        reserve=reserve,
        clock=clock.monotonic,
        sleep=clock.sleep,
        wall_clock=clock.time,
    )


def test_org_sliding_window() -> None:
    clock = FakeClock()
    budget = _budget(clock)
    waits = [budget.acquire(ORG) for _ in range(5)]
    assert waits == [0, 0, 0, 0, 0]
    clock.now = 10.0
    assert budget.acquire(ORG) == pytest.approx(50.0)  # oldest event at 0 expires at 60
    assert clock.now == pytest.approx(60.0)


def test_search_budget_counts_against_org_too() -> None:
    clock = FakeClock()
    budget = _budget(clock, org=3, search=2)
    assert budget.acquire(SEARCH) == 0 and budget.acquire(SEARCH) == 0
    assert budget.acquire(SEARCH) == pytest.approx(60.0)
    clock.now = 200.0
    budget2 = _budget(clock, org=3, search=100)
    for _ in range(3):
        budget2.acquire(SEARCH)
    assert budget2.acquire(ORG) == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("reset", "expected"),
    [("10", 10.0), (str(1_800_000_000 + 25), 25.0), (str((1_800_000_000 + 5) * 1000), 5.0)],
)
def test_observe_reserve_waits_until_reset(reset: str, expected: float) -> None:
    clock = FakeClock()
    budget = _budget(clock, org=100)
    assert budget.observe({"x-ratelimit-remaining": "3", "x-ratelimit-reset": reset}) == 0
    assert budget.acquire() == 0
    assert budget.observe({"X-RateLimit-Remaining": "2", "X-RateLimit-Reset": reset}) == (
        pytest.approx(expected)
    )
    assert budget.acquire() == pytest.approx(expected)
    assert budget.acquire() == 0


def test_header_parsers() -> None:
    assert reset_delay(None) is None and reset_delay("soon") is None
    assert reset_delay(str(1_000), now=0) == 1000.0
    assert reset_delay(str(1_999_999_000), now=2_000_000_000) == 0.0
    assert retry_after_delay("3.5") == 3.5
    assert retry_after_delay("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_delay("garbage") is None


def test_noop_sleep_with_real_clock_terminates() -> None:
    budget = RateBudget(1, 1, sleep=lambda _s: None)
    started = time.monotonic()
    budget.acquire(SEARCH)
    assert budget.acquire(SEARCH) == pytest.approx(60.0, abs=1)
    assert time.monotonic() - started < 1


def test_thread_safe_under_contention() -> None:
    clock = FakeClock()
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            clock.sleep(seconds)

    budget = RateBudget(10, 10, clock=clock.monotonic, sleep=sleep)
    threads = [
        threading.Thread(target=lambda: [budget.acquire() for _ in range(5)]) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(budget.org._events) <= 10


def test_client_proactive_waits_counted() -> None:
    server = FakeKustomer()
    clock = FakeClock()
    with make_client(server, clock, org_requests_per_minute=5) as client:
        for _ in range(12):
            client.current_user()
    assert clock.now >= 120.0
    assert client.stats.rate_limit_waits == 2
    assert client.stats.wait_seconds == pytest.approx(120.0)
    assert client.stats.requests == 12


def test_client_honours_remaining_headers() -> None:
    server = FakeKustomer(
        rate_headers=lambda n: {
            "x-ratelimit-limit": "1000",
            "x-ratelimit-remaining": "1" if n == 1 else "500",
            "x-ratelimit-reset": "15",
        }
    )
    clock = FakeClock()
    with make_client(server, clock) as client:
        client.current_user()
        assert clock.now == 0
        client.current_user()
    assert clock.now == pytest.approx(15.0)
    assert client.stats.rate_limit_waits == 1
