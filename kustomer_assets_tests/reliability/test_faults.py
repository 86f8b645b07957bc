"""The fault matrix: each kind of trouble a live org and its network cause, during a real
multi-day backfill of conversations, customers and messages while agents change records
between page requests. Every run must succeed and hold exactly what the org held: untouched
records at their exact versions and values, churned ones at a version they had, nothing twice.

Each scenario also proves its trouble really happened (fault counters, retries, waits, the
restart), so a scenario whose fault silently stopped firing fails instead of passing.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kustomer_assets.assets.raw import build_entity_asset
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import CONVERSATIONS, CUSTOMERS, MESSAGES
from kustomer_assets_tests.conftest import (
    Lake,
    emulator_config,
    materialize_range,
    resources,
    run_metadata,
)
from kustomer_assets_tests.reliability.truth import (
    assert_live_table,
    referenced_ids,
    snapshot,
)

SPECS = (CONVERSATIONS, CUSTOMERS, MESSAGES)
ASSETS = [build_entity_asset(spec) for spec in SPECS]
CHURN = {"conversation": 2, "message": 3}
"""Records changed after every search page served: agents replying and re-tagging."""

PAGES = {"search_page_size": 100}
"""Several pages per window, so faults and churn land between page requests."""

RANGE_DAYS = 9
"""Two windows (7 + 2 days): a fault in the second must not undo the first."""

Background = Callable[[Emulator, threading.Event, list[str]], None]
"""Runs beside the backfill until the event is set; appends what it did to the list."""


def _wait_for(condition: Callable[[], bool], stop: threading.Event, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if stop.is_set() or time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def eat_half_the_budget(emulator: Emulator, stop: threading.Event, done: list[str]) -> None:
    """Another app on the same org: spends half of every fixed rate window as it opens."""
    window = emulator.config.rate_window_seconds
    org, search = emulator.config.org_rate_limit // 2, emulator.config.search_rate_limit // 2
    spent_in = -1
    while not stop.is_set():
        current = math.floor(time.time() / window)
        if current != spent_in:
            emulator.consume(org=org, search=search)
            done.append(f"consumed {org} org and {search} search requests")
            spent_in = current
        stop.wait(0.005)


def restart_mid_request(emulator: Emulator, stop: threading.Event, done: list[str]) -> None:
    """Restart the server once, after some requests, while one request is inside it (held
    there by a slow answer) so that its connection is really cut, not just idle."""
    if not _wait_for(lambda: emulator.stats.get("requests", 0) >= 12, stop):
        return
    emulator.set_faults(1.0, slow_seconds=0.5, slow=1)
    caught = _wait_for(lambda: emulator.stats.get("faults.slow", 0) >= 1, stop)
    emulator.set_faults(0.0)
    if caught:
        emulator.restart()
        done.append("restarted")


Proof = Callable[[dict[str, int], dict[str, float], list[str]], None]


@dataclass(frozen=True)
class Scenario:
    server: dict[str, Any]
    proof: Proof
    """Asserts on (emulator stats, client counters summed over assets, what the background
    did) that the trouble really hit the run."""
    client: dict[str, Any] = field(default_factory=dict)
    background: Background | None = None
    past_range: bool = False
    """End the range yesterday: churned records then leave the window instead of moving
    inside it, the other way a moving list skips records."""
    scale: float = 0.5
    """Emulator size; 1.0 for past ranges, where at 0.5 the emulator's big tie of
    conversations (one bulk update) falls on today and leaves the past days nearly empty."""


def _every_fault_retried(stats: dict[str, int], client: dict[str, float]) -> None:
    assert stats.get("faults", 0) > 0, stats
    # Our client is the server's only caller: every injected fault cost exactly one retry.
    assert client["retries"] == stats["faults"], (client, stats)


def _proof_5xx(stats: dict[str, int], client: dict[str, float], done: list[str]) -> None:
    assert all(stats.get(f"faults.{kind}", 0) > 0 for kind in ("500", "502", "503_html")), stats
    _every_fault_retried(stats, client)


def _proof_429(stats: dict[str, int], client: dict[str, float], done: list[str]) -> None:
    assert stats.get("faults.429", 0) > 0, stats
    # Beyond waiting out each burst, the client paused itself on the small search budget
    # (the headers said it was nearly spent), which is why the budget's own 429s stay rare.
    assert client["rate_limit_waits"] > stats["faults.429"], (client, stats)
    assert client["wait_seconds"] >= stats["faults.429"], (client, stats)


def _proof_shared_budget(stats: dict[str, int], client: dict[str, float], done: list[str]) -> None:
    assert len(done) >= 2, done  # the other app spent half of at least two windows
    assert client["rate_limit_waits"] > 0, client


def _proof_slow(stats: dict[str, int], client: dict[str, float], done: list[str]) -> None:
    assert stats.get("faults.slow", 0) > 0, stats
    _every_fault_retried(stats, client)


def _proof_broken_bodies(stats: dict[str, int], client: dict[str, float], done: list[str]) -> None:
    assert stats.get("faults.truncated", 0) > 0 and stats.get("faults.drop", 0) > 0, stats
    _every_fault_retried(stats, client)


def _proof_restart(stats: dict[str, int], client: dict[str, float], done: list[str]) -> None:
    assert done == ["restarted"] and stats.get("restarts", 0) == 1, (done, stats)
    assert client["retries"] >= 1, client  # the request cut by the restart was sent again


SCENARIOS: dict[str, Scenario] = {
    "a-mixed-5xx": Scenario(
        server={"fault_rate": 0.1, "fault_kinds": {"500": 1, "502": 1, "503_html": 1}},
        proof=_proof_5xx,
        past_range=True,
        scale=1.0,
    ),
    "b-429-bursts": Scenario(
        # 15 searches per 1-second window, and 429s "from another key" with Retry-After.
        server={
            "search_rate_limit": 15,
            "rate_window_seconds": 1.0,
            "fault_rate": 0.08,
            "fault_kinds": {"429": 1},
        },
        proof=_proof_429,
    ),
    "c-half-the-budget-taken": Scenario(
        server={"org_rate_limit": 60, "search_rate_limit": 30, "rate_window_seconds": 1.0},
        proof=_proof_shared_budget,
        background=eat_half_the_budget,
    ),
    "d-slow-past-timeout": Scenario(
        server={"fault_rate": 0.05, "fault_kinds": {"slow": 1}, "slow_seconds": 0.6},
        client={"timeout_seconds": 0.3},
        proof=_proof_slow,
        past_range=True,
        scale=1.0,
    ),
    "e-truncated-and-dropped": Scenario(
        server={"fault_rate": 0.25, "fault_kinds": {"truncated": 1, "drop": 1}},
        proof=_proof_broken_bodies,
    ),
    "f-server-restarted": Scenario(server={}, proof=_proof_restart, background=restart_mid_request),
}


def _range(past: bool) -> tuple[str, str]:
    today = datetime.now(UTC).date()
    last = today - timedelta(days=1) if past else today
    return (last - timedelta(days=RANGE_DAYS - 1)).isoformat(), last.isoformat()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_backfill_through_faults_equals_the_truth(lake: Lake, name: str) -> None:
    scenario = SCENARIOS[name]
    first, last = _range(scenario.past_range)
    config = emulator_config(days=RANGE_DAYS + 2, scale=scenario.scale, **scenario.server)
    with Emulator(config) as server:
        before = {spec.name: snapshot(server, spec.kustomer_type) for spec in SPECS}
        server.set_churn(CHURN)
        stop, done = threading.Event(), []
        worker = None
        if scenario.background is not None:
            worker = threading.Thread(
                target=scenario.background, args=(server, stop, done), daemon=True
            )
            worker.start()
        try:
            res = resources(server.base_url, lake, **{**PAGES, **scenario.client})
            result = materialize_range(ASSETS, first, last, res)
        finally:
            stop.set()
            if worker is not None:
                worker.join(timeout=10)
        server.set_churn({})
        server.set_faults(0.0)
        assert result.success
        stats = server.stats
        after = {spec.name: snapshot(server, spec.kustomer_type) for spec in SPECS}
        churned = {spec.name: server.churned(spec.kustomer_type) for spec in SPECS}
        metadata = {spec.name: run_metadata(result, spec.name) for spec in SPECS}
    client = {
        key: sum(metadata[spec.name][f"kustomer/{key}"] for spec in SPECS)
        for key in ("retries", "rate_limit_waits", "wait_seconds")
    }
    scenario.proof(stats, client, done)

    conversations = lake.table("conversations")
    checked = {}
    for spec in SPECS:
        table = conversations if spec is CONVERSATIONS else lake.table(spec.name)
        extra = referenced_ids(conversations, "customer_id", first, last)
        checked[spec.name] = assert_live_table(
            table,
            spec,
            before[spec.name],
            after[spec.name],
            churned[spec.name],
            first,
            last,
            also_expected=extra if spec is CUSTOMERS else (),
        )
        assert metadata[spec.name]["ids_unaccounted"] == 0
    assert checked["conversations"].exact > 200 and checked["conversations"].touched > 5, checked
    assert checked["messages"].exact > 800 and checked["messages"].touched > 5, checked
    assert checked["customers"].exact > 100, checked
    assert metadata["conversations"]["changed_during_run"] > 0
