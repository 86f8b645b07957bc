"""`kustomer_lake_maintenance`: fewer files after compaction and vacuum, every table unchanged.

A backfill re-materialized twice leaves each day's earlier files behind (marked removed in the
log, still on disk). Maintenance must delete them and merge small files without changing one
value, must refuse a retention below what delta-rs allows unless forced, and with the default
retention must delete nothing that young.
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from kustomer_assets.assets.feedback import feedback
from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.assets.removals import removed_records
from kustomer_assets.definitions import defs
from kustomer_assets.emulator import Emulator
from kustomer_assets.lake import DeltaStore
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets.maintenance import (
    RETENTION_VARIABLE,
    kustomer_lake_maintenance,
    list_tables,
)
from kustomer_assets_tests.conftest import (
    Lake,
    day_range,
    emulator_config,
    materialize_range,
    resources,
)

DAYS = 5
OP = "compact_and_vacuum"


def canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame in an order that does not depend on files: sorted by every flat column."""
    flat = [name for name, dtype in frame.schema.items() if not dtype.is_nested()]
    return frame.sort(flat, nulls_last=True)


def parquet_files(root: Path, table: str) -> int:
    return sum(1 for _ in (root / table).rglob("*.parquet"))


def contents(lake: Lake, tables: list[str]) -> dict[str, pl.DataFrame]:
    return {table: canonical(lake.table(table)) for table in tables}


def run_maintenance(lake: Lake, **config: object) -> dg.ExecuteInProcessResult:
    return kustomer_lake_maintenance.execute_in_process(
        resources={"lake": DeltaLakeResource(root=str(lake.root))},
        run_config={"ops": {OP: {"config": config}}},
        raise_on_error=False,
    )


def observations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
    return {
        event.asset_key.path[-1]: {k: v.value for k, v in event.metadata.items()}
        for event in (
            e.event_specific_data.asset_observation
            for e in result.all_events
            if e.is_asset_observation
        )
    }


@pytest.fixture(scope="module")
def rerun_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    lake = Lake(tmp_path_factory.mktemp("maintenance") / "delta")
    with Emulator(emulator_config(days=DAYS)) as server:
        first, last = day_range(DAYS + 1)
        res = resources(server.base_url, lake)
        lake_only = {"lake": DeltaLakeResource(root=str(lake.root))}
        materialize_range(entity_assets, first, last, res)
        dg.materialize([removed_records], resources=res)
        dg.materialize([feedback], resources=lake_only)
        for _ in range(2):  # the two re-materializations
            materialize_range(entity_assets, first, last, res)
            dg.materialize([feedback], resources=lake_only)
    yield lake


def test_job_and_weekly_schedule_are_defined_and_the_schedule_starts_stopped() -> None:
    assert defs.resolve_job_def("kustomer_lake_maintenance").name == "kustomer_lake_maintenance"
    schedule = defs.resolve_schedule_def("kustomer_lake_maintenance_weekly")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 4 * * 0"


def test_maintenance_drops_files_and_keeps_every_table_equal(
    rerun_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = rerun_lake
    tables = list_tables(DeltaStore(str(lake.root)))
    assert {"conversations", "messages", "customers", "feedback", "removed_records"} <= set(tables)
    before = contents(lake, tables)
    files_before = {t: parquet_files(lake.root, t) for t in tables}

    # Below delta-rs' floor (the tables' 168 h) without force: refused, nothing touched.
    monkeypatch.setenv(RETENTION_VARIABLE, "24")
    refused = run_maintenance(lake)
    assert not refused.success
    failure = refused.get_step_failure_events()[0].step_failure_data.error
    assert RETENTION_VARIABLE in failure.message and "force_retention" in failure.message
    assert {t: parquet_files(lake.root, t) for t in tables} == files_before
    monkeypatch.delenv(RETENTION_VARIABLE)

    # The default retention (168 h): compaction only, every file here is younger than that.
    default = run_maintenance(lake)
    assert default.success
    seen = observations(default)
    assert set(seen) == set(tables)
    assert all(m["maintenance/files_vacuumed"] == 0 for m in seen.values())
    assert all(m["maintenance/retention_hours"] == 168 for m in seen.values())
    assert contents(lake, tables).keys() == before.keys()
    for table, frame in contents(lake, tables).items():
        assert frame.equals(before[table]), f"{table} changed by compaction"

    # Forced to 0 h: every replaced file goes.
    forced = run_maintenance(lake, retention_hours=0, force_retention=True)
    assert forced.success
    seen = observations(forced)
    after = {t: parquet_files(lake.root, t) for t in tables}
    rerun = {asset.key.path[-1] for asset in entity_assets}
    for table in tables:
        assert after[table] <= files_before[table], table
        assert seen[table]["maintenance/files_after"] == after[table]
        if table in rerun:  # written three times: two thirds of its files were replaced
            assert after[table] < files_before[table], table
            assert seen[table]["maintenance/bytes_removed"] > 0, table
    assert sum(after.values()) < sum(files_before.values()) / 2
    output_event = next(e for e in forced.all_events if e.event_type_value == "STEP_OUTPUT")
    metadata = output_event.event_specific_data.metadata
    assert metadata["files_after"].value == sum(after.values())
    for table, frame in contents(lake, tables).items():
        assert frame.equals(before[table]), f"{table} changed by maintenance"

    # The lake goes on working: a feedback build after the vacuum reads what is left.
    rebuilt = dg.materialize([feedback], resources={"lake": DeltaLakeResource(root=str(lake.root))})
    assert rebuilt.success
    assert canonical(lake.table("feedback")).equals(before["feedback"])
