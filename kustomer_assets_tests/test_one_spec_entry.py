"""Adding an entity is one spec entry: a made-up one gets its asset, checks, key-check probe
and sensor coverage with nothing else changed, and its table equals the server's records."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from kustomer_assets.checks.key_check import check_key
from kustomer_assets.checks.key_check.probes import key_probes
from kustomer_assets.definitions import build_definitions
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import ENTITIES, EntitySpec, Probe, SearchSource
from kustomer_assets.kustomer import KustomerClient, KustomerSettings
from kustomer_assets.kustomer.search import SEARCH_PATH
from kustomer_assets.records import TIMESTAMP, Column, attr
from kustomer_assets_tests.conftest import (
    TEST_KEY,
    Lake,
    assert_matches_truth,
    day_range,
    resources,
    truth_in_window,
)
from kustomer_assets_tests.test_automation import selected, tick

ORDER_READ = "org.permission.order.read"
"""A role no other entity uses, so the key check must probe it from this entry alone."""

ORDERS = EntitySpec(
    name="orders",
    kustomer_type="kobject",
    source=SearchSource("kobject"),
    role=ORDER_READ,
    required=False,
    keep_custom=False,
    description="Orders, as a team would add them: custom objects under a name of their own.",
    columns=(
        Column("id", ("id",), pl.Utf8, "Order id."),
        attr("updated_at", "updatedAt", TIMESTAMP, "Last change."),
        attr("created_at", "createdAt", TIMESTAMP, "Created."),
        attr("title", "title", pl.Utf8, "Order title."),
    ),
)
WITH_ORDERS = (*ENTITIES, ORDERS)
KEY = dg.AssetKey(ORDERS.name)


def test_the_entry_gets_an_asset_and_its_checks(emulator: Emulator, lake: Lake) -> None:
    defs = build_definitions(WITH_ORDERS, resources=resources(emulator.base_url, lake))
    asset = defs.resolve_assets_def(KEY)
    assert asset.partitions_def is not None
    assert asset.specs_by_key[KEY].description == ORDERS.description
    checks = {
        key.name
        for checks_def in defs.asset_checks or []
        for key in checks_def.check_keys
        if key.asset_key == KEY
    }
    assert {"unique_id_updated_at", "complete_vs_api", "partition_fresh"} <= checks
    # ... and nothing of it leaks into the defaults
    defaults = build_definitions(resources=resources(emulator.base_url, lake))
    assert KEY not in defaults.resolve_asset_graph().get_all_asset_keys()


def test_the_entry_lands_the_servers_records(emulator: Emulator, lake: Lake) -> None:
    defs = build_definitions(WITH_ORDERS, resources=resources(emulator.base_url, lake))
    first, last = day_range(10)
    job = defs.resolve_implicit_global_asset_job_def()
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            asset_selection=[KEY],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
        )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks.get("unique_id_updated_at") is True
    assert checks.get("complete_vs_api") is True
    expected = truth_in_window(emulator, ORDERS, first, last)
    assert expected, "the emulator serves kobjects in the window"
    assert_matches_truth(lake.table(ORDERS.name), ORDERS.mapper.frame(expected))


def test_the_sensors_and_schedule_cover_the_entry(emulator: Emulator, lake: Lake) -> None:
    defs = build_definitions(WITH_ORDERS, resources=resources(emulator.base_url, lake))
    schedule = defs.resolve_schedule_def("finalize_yesterday")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime.now(UTC), repository_def=defs.get_repository_def()
    )
    nightly = schedule.evaluate_tick(context).run_requests or []
    assert [KEY in (r.asset_selection or []) for r in nightly] == [True]
    for name in ("kustomer_changes", "kustomer_webhook_events"):
        assert KEY in _selection(defs, defs.resolve_sensor_def(name)), name

    from kustomer_assets.automation import build_kustomer_changes_sensor

    sensor = build_kustomer_changes_sensor(clock=emulator.dataset.clock, entities=WITH_ORDERS)
    cursor = tick(sensor, emulator, cursor=None).cursor
    emulator.dataset.mutate("kobject", change=5)
    result = tick(sensor, emulator, cursor=cursor)
    assert isinstance(result, dg.SensorResult)
    assert result.run_requests
    assert all(ORDERS.name in selected(r) for r in result.run_requests)


def _selection(defs: dg.Definitions, target: dg.SensorDefinition) -> set[dg.AssetKey]:
    """The assets a sensor's runs may materialize (its anonymous job's selection)."""
    job = defs.get_repository_def().get_job(target.job_name)
    return set(job.asset_layer.selected_asset_keys)


def test_the_key_check_probes_the_entrys_role(emulator: Emulator) -> None:
    assert Probe(ORDER_READ, SEARCH_PATH, "kobject") in key_probes(WITH_ORDERS)
    assert ORDER_READ not in {p.role for p in key_probes()}
    settings = KustomerSettings(api_key=TEST_KEY, base_url=emulator.base_url)
    with KustomerClient(settings) as client:
        report = check_key(client, WITH_ORDERS)
    row = report.row(ORDER_READ)
    assert (row.status, row.unlocks, row.required) == ("present", (ORDERS.name,), False)
    assert emulator.stats.get("search.kobject", 0) >= 1
