"""Proactive rate budgets: sliding windows, header-driven pauses, injectable time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from kustomer_assets.emulator import Emulator
from kustomer_assets.kustomer import KustomerClient, KustomerSettings
from kustomer_assets.kustomer.budget import (
    ORG,
    SEARCH,
    RateBudget,
    reset_delay,
    retry_after_delay,
    yielding,
)
from kustomer_assets_tests.conftest import FAST_RETRIES, TEST_KEY, emulator_config
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


def test_a_yielding_thread_is_paced_and_leaves_room_for_searches() -> None:
    """A by-id load beside the run's steps (`assets/background.py`) sends one request per
    gap (window / limit), so the slots it holds free one by one; while a step searches it
    leaves the room the search budget needs; a thread that does not yield is never held."""
    clock = FakeClock()
    alone = _budget(clock, org=10, search=3)  # a 6 s gap
    with yielding():
        waits = [alone.acquire(ORG) for _ in range(11)]
    assert waits[0] == 0 and waits[1:] == [pytest.approx(6.0)] * 10  # the share, evenly
    clock.now = 1_000.0
    budget = _budget(clock, org=10, search=3)
    budget.acquire(SEARCH)  # a step's search
    with yielding():
        for _ in range(6):  # 10 - 3 kept for searches: 7, one taken by the search
            budget.acquire(ORG)
    assert [budget.acquire(SEARCH) for _ in range(2)] == [0, 0]  # the room was kept
    with yielding():
        assert budget.acquire(ORG) > 6.0  # the window is full for it: more than one gap
    clock.now = 2_000.0
    steps = _budget(clock, org=10, search=3)
    steps.acquire(SEARCH)
    assert [steps.acquire(ORG) for _ in range(9)] == [0] * 9  # no thread yields: no pacing


def test_a_yielding_thread_keeps_room_for_a_step_and_the_share_busy() -> None:
    """Five minutes of a by-id load at 500 a minute beside a step sending a request every
    30 s: the room kept for the step means it never waits, and together they still send
    nearly the whole share (the room costs a fiftieth of it)."""
    clock = FakeClock()
    budget = _budget(clock, org=500, search=90)
    by_id, step_waits, next_step = 0, [], 2.0
    while clock.now < 300.0:
        if clock.now >= next_step:  # one thread plays both: marks a wait passes are skipped
            step_waits.append(budget.acquire(ORG))
            next_step += 30.0
        with yielding():
            budget.acquire(ORG)
        by_id += 1
    assert len(step_waits) >= 5 and max(step_waits) == 0
    assert by_id + len(step_waits) >= 0.97 * 500 * 5


@contextmanager
def by_id_load_beside(budget: RateBudget) -> Iterator[list[float]]:
    """A yielding thread taking org tickets until the block ends: the moments it got them."""
    stop = threading.Event()
    got: list[float] = []

    def load() -> None:
        with yielding():
            while not stop.is_set():
                budget.acquire(ORG)
                got.append(time.monotonic())

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_step_after_a_silence_waits_one_gap_not_a_window() -> None:
    """Real threads, a 0.4 s window of 40 (a 10 ms gap): the thread alone for two windows is
    paced, so when a step starts sending its requests wait about a gap, where a thread that
    spent each window at once made the first one wait for the next burst (up to 0.4 s)."""
    budget = RateBudget(40, 20, window_seconds=0.4)
    with by_id_load_beside(budget) as background:
        time.sleep(0.9)
        waits = [budget.acquire(ORG) for _ in range(5)]
    assert max(waits) <= 0.1, waits
    assert len(background) >= 60  # the share meanwhile: 40 per 0.4 s, paced


def test_a_yielding_thread_lets_a_waiting_step_go_first() -> None:
    """Real threads, a 0.4 s window: the yielding thread spends the whole window before the
    step asks, then both wait for it to roll. Each of the step's requests goes at the first
    free slot: none waits a second window, and the yielding thread still got the rest."""
    budget = RateBudget(8, 4, window_seconds=0.4)
    with by_id_load_beside(budget) as background:
        while len(background) < 8:  # the window is spent
            time.sleep(0.01)
        waits = [budget.acquire(ORG) for _ in range(6)]
    assert waits[0] <= 0.45, waits  # the first slot to free, not one after the thread's
    assert sum(waits) <= 0.9, waits  # six requests within about two windows of a full one
    assert len(background) > 8  # the thread was not shut out


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


# -- following the server: its window, its limit, what it says is left ----------------------

WALL = 1_800_000_000.0
"""FakeClock's wall time at monotonic 0."""


def _reset(mode: str, seconds: float, clock: FakeClock) -> str:
    """`x-ratelimit-reset` `seconds` from now, in one of the readings the notes allow."""
    if mode == "seconds":
        return str(int(seconds))
    if mode == "epoch":
        return str(int(clock.time() + seconds))
    return str(int((clock.time() + seconds) * 1000))  # epoch milliseconds


def _answer(remaining: int, reset: str, limit: int = 1000) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": reset,
    }


@pytest.mark.parametrize("mode", ["seconds", "epoch", "epoch_ms"])
def test_share_is_spent_per_the_servers_window_not_per_minute(mode: str) -> None:
    clock = FakeClock()
    budget = _budget(clock, org=100, search=3, reserve=0)
    first = budget.take(SEARCH)
    assert budget.observe(_answer(99, _reset(mode, 2, clock), 100), SEARCH, first) == 0
    assert budget.search.window == 2  # learnt: the server's window is 2 s, not a minute
    assert [budget.acquire(SEARCH) for _ in range(2)] == [0, 0]
    # Three searches per window, as configured; the next waits for the 2 s window, not 60.
    assert budget.acquire(SEARCH) == pytest.approx(2.0)
    assert clock.now == pytest.approx(2.0)


def test_learnt_window_never_exceeds_the_configured_one() -> None:
    clock = FakeClock()
    budget = _budget(clock, org=2, reserve=0)
    first = budget.take(ORG)
    budget.observe(_answer(900, "119"), ORG, first)  # a reset further than a minute away
    assert budget.org.window == 60
    assert budget.acquire(ORG) == 0
    assert budget.acquire(ORG) == pytest.approx(60.0)


def test_a_lower_server_limit_is_adopted_and_a_higher_one_is_not() -> None:
    clock = FakeClock()
    budget = _budget(clock, org=10, search=5, reserve=0)
    ticket = budget.take(ORG)
    budget.observe(_answer(2, "10", limit=4), ORG, ticket)
    assert budget.org.limit == 4  # the plan's 4 per window, not our 10
    ticket = budget.take(SEARCH)
    budget.observe(_answer(99, "10", limit=100), SEARCH, ticket)
    assert budget.search.limit == 5  # our share of a larger budget stays ours
    clock.now = 10.0  # a new window: the server's whole limit again
    assert [budget.acquire(ORG) for _ in range(4)] == [0, 0, 0, 0]
    assert budget.acquire(ORG) == pytest.approx(10.0)  # a fifth would overshoot the 4


@pytest.mark.parametrize("mode", ["seconds", "epoch", "epoch_ms"])
def test_server_reporting_less_than_our_count_waits_for_its_reset(mode: str) -> None:
    clock = FakeClock()
    budget = _budget(clock, org=100, reserve=2)
    ticket = budget.take(ORG)
    # Another app has spent the org's budget: 4 left, although our count allows 99 more.
    assert budget.observe(_answer(4, _reset(mode, 30, clock)), ORG, ticket) == 0
    assert [budget.acquire(ORG) for _ in range(2)] == [0, 0]  # 4 -> 2: the reserve is reached
    assert budget.acquire(ORG) == pytest.approx(30.0)  # waits for the reset instead of a 429
    assert budget.servers[ORG].left() == 1000 - 1  # the new window: the whole limit, less ours
    assert budget.acquire(ORG) == 0


def test_requests_in_flight_count_against_what_the_server_reported() -> None:
    clock = FakeClock()
    budget = _budget(clock, org=100, reserve=2)
    tickets = [budget.take(ORG) for _ in range(5)]  # five threads sent one request each
    # The first answer says 6 left: the four still in flight may not be counted in it yet.
    assert budget.observe(_answer(6, "20"), ORG, tickets[0]) == pytest.approx(20.0)
    assert budget.acquire(ORG) == pytest.approx(20.0)
    # Answers read in any order: an older one cannot raise what is left.
    budget = _budget(clock, org=100, reserve=2)
    first, second = budget.take(ORG), budget.take(ORG)
    budget.observe(_answer(3, "20"), ORG, second)
    # `first` was still in flight when `second` reported 3: it may not be in that 3.
    assert budget.servers[ORG].left() == 3 - 1
    budget.observe(_answer(4, "20"), ORG, first)  # stale: sent before `second`, read after
    assert budget.servers[ORG].left() == 3 - 1  # (4 would have let two more through)
    assert budget.acquire(ORG) == pytest.approx(20.0)


def test_a_server_limit_within_the_reserve_still_lets_one_request_per_window_through() -> None:
    clock = FakeClock()
    budget = _budget(clock, org=100, reserve=2)
    budget.observe(_answer(1, "5", limit=2), ORG, budget.take(ORG))
    sent = []
    for _ in range(3):
        budget.observe(_answer(1, "5", limit=2), ORG, budget.take(ORG))
        sent.append(clock.now)
    assert sent == [pytest.approx(5.0), pytest.approx(10.0), pytest.approx(15.0)]


def test_searches_count_against_the_org_budget_their_answers_do_not_report() -> None:
    clock = FakeClock()
    budget = _budget(clock, org=500, search=100, reserve=2)
    ticket = budget.take(ORG)
    budget.observe(_answer(7, "10", limit=8), ORG, ticket)  # a small org budget: 7 left
    for _ in range(5):  # each search spends one of those 7, though it reports the search budget
        ticket = budget.take(SEARCH)
        assert clock.now == 0
        budget.observe(_answer(90, "10", limit=100), SEARCH, ticket)
    ticket = budget.take(SEARCH)
    assert clock.now == pytest.approx(10.0)  # 7 - 5 = 2 left: the reserve, so wait for the reset


def test_search_error_answers_are_read_for_the_budget_they_report() -> None:
    clock = FakeClock()
    budget = _budget(clock, org=500, search=100)
    budget.observe(_answer(900, "30", limit=1000), ORG, budget.take(ORG))
    budget.observe(_answer(50, "30", limit=100), SEARCH, budget.take(SEARCH))
    # A refused search whose headers are the org's (as the emulator's are) is the org's news.
    budget.observe(_answer(899, "30", limit=1000), SEARCH, budget.take(SEARCH), status=403)
    assert budget.remaining == {ORG: 899, SEARCH: 50}
    assert budget.servers[SEARCH].remaining == 50
    # A 429 to a search that does not say which budget is spent holds both until its reset.
    budget = _budget(clock, org=500, search=100)
    start = clock.now
    budget.observe(_answer(0, "5", limit=300), SEARCH, budget.take(SEARCH), status=429)
    assert budget.acquire(ORG) == pytest.approx(5.0)
    assert clock.now - start == pytest.approx(5.0)
    assert budget.org.limit == 500  # whose limit it was is unknown: none is adopted


def test_a_rolled_window_forgets_answered_requests_and_keeps_those_in_flight() -> None:
    clock = FakeClock()
    budget = _budget(clock, org=100, reserve=0)
    budget.observe(_answer(10, "5", limit=10), ORG, budget.take(ORG))
    answered, in_flight = budget.take(ORG), budget.take(ORG)
    budget.done(answered)  # answered without headers
    assert budget.servers[ORG].left() == 10 - 2
    clock.now = 5.0
    budget.acquire(ORG)  # rolls the window: 10 again, less the request still in flight
    view = budget.servers[ORG]
    assert view.reset_at == pytest.approx(10.0) and in_flight.seq in view.pending
    assert answered.seq not in view.pending


# -- against the emulator: real headers, short fixed windows ---------------------------------

SEARCH_BODY = {"queryContext": "conversation"}


def _emulator_client(server: Emulator, **settings: object) -> KustomerClient:
    values: dict[str, object] = {"api_key": TEST_KEY, "base_url": server.base_url}
    values.update(FAST_RETRIES)
    values.update(settings)
    return KustomerClient(KustomerSettings(**values))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["epoch", "seconds"])
def test_emulator_share_is_spent_per_its_window_without_a_429(mode: str) -> None:
    config = emulator_config(
        scale=0.05, days=2, search_rate_limit=4, rate_window_seconds=1.0, reset_header_mode=mode
    )
    with Emulator(config) as server:
        # Ours 3 of the server's 4 per window, as the defaults are 90 of 100 per minute.
        with _emulator_client(server, search_requests_per_minute=3, rate_limit_reserve=0) as client:
            started = time.monotonic()
            for _ in range(12):
                client.first_page("/v1/customers/search", search_body=SEARCH_BODY)
            elapsed = time.monotonic() - started
        stats = dict(server.stats)
    assert stats.get("responses.429", 0) == 0, stats
    assert stats["requests.search"] == 12
    assert client.budget.search.window == 1  # the server's window, learnt from its headers
    assert client.stats.rate_limit_waits >= 3  # the share bound: it waited, window by window
    assert elapsed < 10  # 3 per 1 s window, about 4 s; a minute-long window would need 3 min


def test_emulator_searches_spend_the_org_budget_without_a_429() -> None:
    config = emulator_config(scale=0.05, days=2, org_rate_limit=6, rate_window_seconds=1.0)
    with Emulator(config) as server:
        with _emulator_client(server) as client:  # the default 500 org requests a minute
            client.first_page("/v1/users")  # an org answer: this org's plan allows 6 a second
            for _ in range(10):  # each search spends the org budget but reports the search one
                client.first_page("/v1/customers/search", search_body=SEARCH_BODY)
        stats = dict(server.stats)
    assert stats.get("responses.429", 0) == 0, stats
    assert stats["requests"] == 11
    assert client.budget.org.limit == 6  # the server's limit, lower than ours, adopted
    assert client.stats.rate_limit_waits >= 2


def test_clients_of_one_run_share_one_budget() -> None:
    """A run opens one client per asset, one after another: the share is the run's, so the
    next asset's client starts on what the last one spent and heard, not on a fresh minute."""
    settings = KustomerSettings(subdomain="acme", api_key="key-one-0123456789")
    with KustomerClient(settings) as first, KustomerClient(settings) as second:
        assert first.budget is second.budget
    other_key = KustomerSettings(subdomain="acme", api_key="key-two-0123456789")
    other_share = KustomerSettings(
        subdomain="acme", api_key="key-one-0123456789", search_requests_per_minute=10
    )
    for different in (other_key, other_share):
        with KustomerClient(different) as client:
            assert client.budget is not first.budget
    with make_client(FakeKustomer()) as fake, make_client(FakeKustomer()) as fake_too:
        assert fake.budget is not fake_too.budget  # injected clocks: each test its own
