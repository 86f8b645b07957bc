"""CSAT responses (one GET each) load on a thread while the searched steps run, and their
step reports what the thread loaded; when the thread fails, the step loads itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import polars as pl

from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import ENTITIES_BY_NAME
from kustomer_assets_tests.conftest import (
    TEST_KEY,
    Lake,
    day_range,
    emulator_config,
    expected_records,
    materialize_range,
    resources,
    run_metadata,
)

CSAT_GETS = "requests.get_satisfaction_response"
SEARCHES = "requests.search"


def chosen(*names: str) -> list[dg.AssetsDefinition]:
    return [a for a in entity_assets if a.key.to_user_string() in names]


@contextmanager
def sampled(server: Emulator) -> Iterator[list[tuple[float, int, int]]]:
    """(time, CSAT GETs, searches) as the server counted them, every 10 ms."""
    samples: list[tuple[float, int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            stats = server.stats
            samples.append((time.time(), stats.get(CSAT_GETS, 0), stats.get(SEARCHES, 0)))
            stop.wait(0.01)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def step_times(instance: dg.DagsterInstance, run_id: str, step: str) -> tuple[float, float]:
    """When `step` started and succeeded, from the run's event log."""
    times = {
        entry.dagster_event.event_type_value: entry.timestamp
        for entry in instance.all_logs(run_id)
        if entry.step_key == step and entry.dagster_event is not None
    }
    return times["STEP_START"], times["STEP_SUCCESS"]


def csat_ids(server: Emulator, first: str, last: str) -> set[str]:
    return {
        r["id"] for r in expected_records(server, ENTITIES_BY_NAME["satisfaction"], first, last)
    }


def test_csat_responses_load_while_the_searched_steps_run(lake: Lake) -> None:
    # 25 requests a second at the server: the CSAT GETs take seconds, the searches go between.
    config = emulator_config(days=10, org_rate_limit=25, rate_window_seconds=1.0)
    with Emulator(config) as server:
        first, last = day_range(11)
        names = ("conversations", "satisfaction", "messages", "customers", "notes")
        instance = dg.DagsterInstance.ephemeral()
        with sampled(server) as samples:
            result = materialize_range(
                chosen(*names), first, last, resources(server.base_url, lake), instance=instance
            )
        expected = csat_ids(server, first, last)
        assert len(expected) > 40, "too few CSAT responses for the test to mean anything"
        assert set(lake.table("satisfaction")["id"]) == expected

        run_id = result.run_id
        csat_start, _ = step_times(instance, run_id, "satisfaction")
        for searched in ("messages", "customers", "notes"):
            assert step_times(instance, run_id, searched)[1] <= csat_start, "by-id step ran early"
        # The GETs began before the satisfaction step did, and searches were answered while
        # some GETs were done and others still to come: both budgets were busy at once.
        before = [s for s in samples if s[0] < csat_start]
        assert before and before[-1][1] > 0
        during = [s for s in samples if 0 < s[1] < len(expected)]
        assert during and during[-1][2] > during[0][2], "no search between the CSAT GETs"

        meta = run_metadata(result, "satisfaction")
        assert meta["records_fetched"] == len(expected)  # the thread's figures, reported
        logs = [e.user_message for e in instance.all_logs(run_id) if e.step_key == "satisfaction"]
        assert any("(loaded in the background) satisfaction window" in m for m in logs)


def test_a_failed_background_load_is_redone_by_its_step(lake: Lake) -> None:
    """The thread's first CSAT GET fails past its retries; the step then says so and loads
    the responses itself, and the table is whole."""
    with Emulator(emulator_config(days=10)) as server:
        first, last = day_range(11)
        res = resources(server.base_url, lake, max_retries=1)
        server.fail_route("get_satisfaction_response", times=2)  # both tries of the first id
        assets = chosen("conversations", "satisfaction", "messages")
        instance = dg.DagsterInstance.ephemeral()
        result = materialize_range(assets, first, last, res, instance=instance)
        assert set(lake.table("satisfaction")["id"]) == csat_ids(server, first, last)
        assert server.stats["faults.500"] == 2
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
        failed = [m for m in logs if "background load failed" in m]
        assert len(failed) == 1 and failed[0].startswith("satisfaction: "), failed
        assert not any(TEST_KEY in m for m in logs)


def test_a_run_without_csat_fetches_none(lake: Lake) -> None:
    with Emulator(emulator_config(days=10)) as server:
        first, last = day_range(11)
        materialize_range(
            chosen("conversations", "messages"), first, last, resources(server.base_url, lake)
        )
        assert server.stats.get(CSAT_GETS, 0) == 0
        assert not (lake.root / "satisfaction").exists()
        assert pl.read_delta(str(lake.root / "conversations")).height > 0


def test_a_pool_limited_per_step_keeps_csat_in_its_own_step(lake: Lake) -> None:
    """The thread holds no pool slot: where the pool limits steps, another run's step could
    call Kustomer beside it, so the step loads the responses itself."""
    with Emulator(emulator_config(days=10)) as server:
        first, last = day_range(11)
        instance = dg.DagsterInstance.ephemeral()
        instance.event_log_storage.set_concurrency_slots("kustomer_api", 5)
        result = materialize_range(
            chosen("conversations", "satisfaction"),
            first,
            last,
            resources(server.base_url, lake),
            instance=instance,
        )
        assert set(lake.table("satisfaction")["id"]) == csat_ids(server, first, last)
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
        assert any("loaded by its own step, not beside the others" in m for m in logs)
        assert not any("(loaded in the background)" in m for m in logs)
