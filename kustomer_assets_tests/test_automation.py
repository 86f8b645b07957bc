"""The change sensor walked through its cursor's transitions against the emulator, the nightly
schedule, and the wiring of both with the checks."""

import copy
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from kustomer_assets import automation
from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.automation import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    RAW_KEYS,
    SEARCHED,
    build_finalize_yesterday_schedule,
    build_kustomer_changes_sensor,
    recommended_pool_limit,
    refreshed_with,
)
from kustomer_assets.checks.quality import quality_checks
from kustomer_assets.emulator import Emulator
from kustomer_assets.emulator.dataset import ms_to_iso
from kustomer_assets.kustomer.resource import KustomerResource
from kustomer_assets.records import parse_timestamp
from kustomer_assets.timestamps import iso_ms
from kustomer_assets_tests.conftest import TEST_KEY, Lake, emulator_config, resources

CONVERSATION_RUN = {"conversations", "customers", "satisfaction"}
"""A conversation change reloads its day's customers (referenced) and CSAT answers too."""


def searches(server: Emulator) -> dict[str, int]:
    return {s.name: server.stats.get(f"search.{s.source.query_context}", 0) for s in SEARCHED}


def tick(sensor: dg.SensorDefinition, server: Emulator, cursor: str | None, **client: object):
    """One evaluation, as the daemon would run it, with only the resource the sensor needs."""
    kustomer = KustomerResource(
        api_key=TEST_KEY,
        base_url=server.base_url,
        org_requests_per_minute=5000,
        search_requests_per_minute=5000,
        **client,  # type: ignore[arg-type]
    )
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"kustomer": kustomer}
        )
        return sensor(context)


def day_of(stamp: str) -> str:
    moment = parse_timestamp(stamp)
    assert moment is not None
    return moment.date().isoformat()


def selected(request: dg.RunRequest) -> set[str]:
    return {key.path[-1] for key in request.asset_selection or []}


@pytest.fixture
def lagging() -> Iterator[Emulator]:
    """An org whose history ended five days ago: nothing changed since, until a test says so."""
    now = datetime.now(UTC) - timedelta(days=5)
    with Emulator(emulator_config(now=now, days=5, scale=0.3)) as server:
        yield server


def test_first_tick_loads_the_look_back_days_in_one_run(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUSTOMER_FIRST_SYNC_DAYS", "5")
    sensor = build_kustomer_changes_sensor(clock=emulator.dataset.clock)
    before = searches(emulator)
    result = tick(sensor, emulator, cursor=None)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests or []
    today = emulator.dataset.clock().date()
    assert request.partition_key is None
    assert request.tags[RANGE_START_TAG] == (today - timedelta(days=4)).isoformat()
    assert request.tags[RANGE_END_TAG] == today.isoformat()
    assert request.asset_selection == list(RAW_KEYS)
    assert parse_timestamp(result.cursor).date() == today  # type: ignore[union-attr]
    assert searches(emulator) == before, "the first tick needs no search"


def test_cursor_walks_from_nothing_new_to_changed_conversations(
    emulator: Emulator, tmp_path
) -> None:
    sensor = build_kustomer_changes_sensor(clock=emulator.dataset.clock)
    first = tick(sensor, emulator, cursor=None)
    cursor = first.cursor

    before = searches(emulator)
    quiet = tick(sensor, emulator, cursor=cursor)
    assert isinstance(quiet, dg.SkipReason), quiet
    assert {name: n - before[name] for name, n in searches(emulator).items()} == {
        spec.name: 1 for spec in SEARCHED
    }, "one search per searched entity per tick"

    changed = emulator.dataset.mutate("conversation", change=50)["changed"]
    truth = {r["id"]: r for r in emulator.truth("conversation")}
    stamps = [truth[i]["attributes"]["updatedAt"] for i in changed]
    result = tick(sensor, emulator, cursor=cursor)
    assert isinstance(result, dg.SensorResult)
    requests = result.run_requests or []
    assert sorted(r.partition_key for r in requests) == sorted({day_of(s) for s in stamps})
    assert all(selected(r) == CONVERSATION_RUN for r in requests)
    assert result.cursor == iso_ms(max(parse_timestamp(s) for s in stamps))  # type: ignore[type-var]

    # The requested run lands the changed versions, and the next tick is quiet again.
    lake = Lake(tmp_path / "delta")
    for request in requests:
        dg.materialize(
            entity_assets,
            selection=request.asset_selection,
            partition_key=request.partition_key,
            resources=resources(emulator.base_url, lake),
        )
    stored = lake.table("conversations").filter(pl.col("id").is_in(changed))
    assert stored.height == len(changed)
    assert isinstance(tick(sensor, emulator, cursor=result.cursor), dg.SkipReason)


def test_change_stamped_on_an_older_day_requests_that_day(lagging: Emulator) -> None:
    sensor = build_kustomer_changes_sensor()
    cursor = iso_ms(datetime.now(UTC) - timedelta(days=4))
    assert isinstance(tick(sensor, lagging, cursor=cursor), dg.SkipReason)

    # Edit a record the way Kustomer would have three days ago: new updatedAt, next rev.
    ds = lagging.dataset
    stamp = ms_to_iso(int((datetime.now(UTC) - timedelta(days=3)).timestamp() * 1000))
    with ds.lock:
        record_id = sorted(ds.records["conversation"])[0]
        record = copy.deepcopy(ds.records["conversation"][record_id])
        record["attributes"]["updatedAt"] = record["attributes"]["modifiedAt"] = stamp
        record["attributes"]["rev"] += 1
        ds.records["conversation"][record_id] = record
        ds.version += 1  # the emulator caches searches per dataset version

    result = tick(sensor, lagging, cursor=cursor)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests or []
    assert request.partition_key == day_of(stamp)
    assert selected(request) == CONVERSATION_RUN
    assert result.cursor == stamp


def expected_days(server: Emulator, since: datetime, page: int, today: date) -> set[str]:
    """Days a tick must reload: each entity's changed days, or, when more changed than one
    page holds, every day from its oldest change to today."""
    days: set[str] = set()
    for spec in SEARCHED:
        stamps = [
            stamp
            for r in server.truth(spec.kustomer_type)
            if (stamp := parse_timestamp(r["attributes"]["updatedAt"])) and stamp > since
        ]
        if len(stamps) > page:
            first = min(stamps).date()
            days |= {
                (first + timedelta(days=i)).isoformat() for i in range((today - first).days + 1)
            }
        else:
            days |= {s.date().isoformat() for s in stamps}
    return days


def test_more_changes_than_a_page_reload_every_day_since_the_oldest(lagging: Emulator) -> None:
    since = datetime.now(UTC) - timedelta(days=7)
    today = datetime.now(UTC).date()
    expected = expected_days(lagging, since, page=10, today=today)
    assert len(expected) > 3

    per_day = build_kustomer_changes_sensor(max_day_runs=30)
    result = tick(per_day, lagging, cursor=iso_ms(since), search_page_size=10)
    assert isinstance(result, dg.SensorResult)
    requests = result.run_requests or []
    assert {r.partition_key for r in requests} == expected
    assert len(requests) == len(expected)
    assert parse_timestamp(result.cursor).date() == today  # type: ignore[union-attr]

    ranged = build_kustomer_changes_sensor(max_day_runs=3)
    result = tick(ranged, lagging, cursor=iso_ms(since), search_page_size=10)
    (request,) = result.run_requests or []
    assert request.tags[RANGE_START_TAG] == min(expected)
    assert request.tags[RANGE_END_TAG] == max(expected) == today.isoformat()


def test_schedule_requests_yesterday_of_every_raw_asset_in_one_run() -> None:
    schedule = build_finalize_yesterday_schedule()
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    )
    request = schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2026-11-19"
    assert request.asset_selection == list(RAW_KEYS)


def test_partition_fresh_runs_hourly_through_the_automation_sensor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUSTOMER_API_KEY", "not-used")
    from kustomer_assets.resources import resources_from_env

    assets = [a for a in entity_assets if a.key.path[-1] in ("conversations", "messages")]
    defs = dg.Definitions(
        assets=assets, asset_checks=quality_checks(assets), resources=resources_from_env()
    )
    start = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    requested = []
    with dg.instance_for_test() as instance:
        cursor = None
        for minutes in (0, 20, 40, 50):
            result = dg.evaluate_automation_conditions(
                defs=defs,
                instance=instance,
                evaluation_time=start + timedelta(minutes=minutes),
                cursor=cursor,
            )
            cursor = result.cursor
            requested.append(
                sorted(
                    (r.key.asset_key.path[-1], r.key.name)
                    for r in result.results
                    if r.true_subset.size and isinstance(r.key, dg.AssetCheckKey)
                )
            )
    fresh = [("conversations", "partition_fresh"), ("messages", "partition_fresh")]
    assert requested == [[], [], fresh, []], "once per hour, after 11:00"


def test_followers_come_from_the_spec_table() -> None:
    assert refreshed_with({"conversations"}) == CONVERSATION_RUN
    assert refreshed_with({"messages"}) == {"messages"}


def test_pool_limit_recommendation() -> None:
    assert automation.RECOMMENDED_POOL_LIMIT == recommended_pool_limit() == 1
    # The key's search budget is the connector's own: 100 // 25 runs of 25 searches/min each.
    assert recommended_pool_limit(per_run_search_per_minute=25) == 4
    assert recommended_pool_limit(connector_share=0.5, per_run_search_per_minute=25) == 2
    assert recommended_pool_limit(org_search_per_minute=100, connector_share=0.2) == 1


def test_definitions_load_with_checks_schedules_and_sensors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUSTOMER_API_KEY", "not-used")
    from kustomer_assets.resources import resources_from_env

    defs = dg.Definitions(
        assets=entity_assets,
        asset_checks=quality_checks(entity_assets),
        schedules=automation.schedules,
        sensors=automation.sensors,
        resources=resources_from_env(),
    )
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert {s.name for s in repo.sensor_defs} == {
        "kustomer_changes",
        "default_automation_condition_sensor",
    }
    automation_sensor = repo.get_sensor_def("default_automation_condition_sensor")
    assert automation_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    changes = repo.get_sensor_def("kustomer_changes")
    assert changes.minimum_interval_seconds == 300
    assert changes.default_status == dg.DefaultSensorStatus.STOPPED
    monkeypatch.setenv("KUSTOMER_SENSOR_INTERVAL_SECONDS", "60")
    monkeypatch.setenv("KUSTOMER_AUTOMATION_RUNNING", "true")
    tuned = build_kustomer_changes_sensor()
    assert tuned.minimum_interval_seconds == 60
    assert tuned.default_status == dg.DefaultSensorStatus.RUNNING
