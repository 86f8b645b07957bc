"""Shared fixtures: a real emulator on loopback, a temp Delta root, and range materializations."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from kustomer_assets.emulator import Emulator, EmulatorConfig
from kustomer_assets.entities import ENTITIES_BY_NAME, EntitySpec, SearchSource
from kustomer_assets.extract import custom_attribute_records
from kustomer_assets.kustomer.resource import KustomerResource
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets.records import parse_timestamp

TEST_KEY = "test-key-0123456789-SECRET"
"""Distinctive so a test can grep every log and error for it."""

FAST_RETRIES = {"backoff_base_seconds": 0.01, "max_retries": 8, "timeout_seconds": 5.0}


@dataclass
class Lake:
    root: Path

    def table(self, name: str) -> pl.DataFrame:
        return pl.read_delta(str(self.root / name))


def emulator_config(**overrides: object) -> EmulatorConfig:
    settings: dict[str, object] = {"seed": 11, "days": 10, "api_keys": {TEST_KEY: None}}
    settings.update(overrides)
    return EmulatorConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(emulator_config()) as server:
        yield server


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "delta")


def resources(base_url: str, lake: Lake, **client: object) -> dict[str, object]:
    settings: dict[str, object] = {
        "api_key": TEST_KEY,
        "base_url": base_url,
        "org_requests_per_minute": 5000,
        "search_requests_per_minute": 5000,
        **FAST_RETRIES,
    }
    settings.update(client)
    return {
        "kustomer": KustomerResource(**settings),  # type: ignore[arg-type]
        "lake": DeltaLakeResource(root=str(lake.root)),
    }


def day_range(days: int, today: date | None = None) -> tuple[str, str]:
    today = today or datetime.now(UTC).date()
    return (today - timedelta(days=days - 1)).isoformat(), today.isoformat()


def materialize_range(
    assets: Sequence[dg.AssetsDefinition],
    first: str,
    last: str,
    res: dict[str, object],
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """One single-run backfill over `first...last`, as the UI or CLI would launch it."""
    return dg.materialize(
        assets,
        resources=res,
        instance=instance,
        raise_on_error=raise_on_error,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
    )


def truth_in_window(emulator: Emulator, spec: EntitySpec, first: str, last: str) -> list[dict]:
    """The server's records a backfill of `first...last` must hold.

    Records updated in the window, plus (for specs with a `reference`, i.e. customers) the
    records that the window's rows of the referring table point at, whatever their age.
    """
    start = datetime.fromisoformat(first).replace(tzinfo=UTC)
    end = datetime.fromisoformat(last).replace(tzinfo=UTC) + timedelta(days=1)

    def in_window(record: dict) -> bool:
        updated = parse_timestamp(record["attributes"].get("updatedAt"))
        return updated is not None and start <= updated < end

    records = emulator.truth(spec.kustomer_type, include_deleted=True)
    wanted = {r["id"] for r in records if in_window(r)}
    if spec.reference is not None:
        referring = ENTITIES_BY_NAME[spec.reference.table]
        column = next(c for c in referring.columns if c.name == spec.reference.column)
        for record in emulator.truth(referring.kustomer_type, include_deleted=True):
            if in_window(record) and column.extract(record):
                wanted.add(column.extract(record))
    return [r for r in records if r["id"] in wanted]


def expected_records(server: Emulator, spec: EntitySpec, first: str, last: str) -> list[dict]:
    """What a correct extraction holds: windowed for searched entities, whole for snapshots."""
    if spec.name == "custom_attributes":
        return [
            record
            for resource in server.truth("metadata")
            for record in custom_attribute_records(resource["id"], resource)
        ]
    if spec.name == "satisfaction":
        # Answered in the window, or answered earlier on a conversation loaded in the window.
        conversations = truth_in_window(server, ENTITIES_BY_NAME["conversations"], first, last)
        referenced = {
            (c["attributes"].get("satisfactionLevel") or {}).get("formResponse")
            for c in conversations
        }
        answered = {r["id"] for r in truth_in_window(server, spec, first, last)}
        return [
            r
            for r in server.truth(spec.kustomer_type)
            if r["id"] in answered or r["id"] in referenced
        ]
    if isinstance(spec.source, SearchSource):
        return truth_in_window(server, spec, first, last)
    return server.truth(spec.kustomer_type)


def latest_per_id(table: pl.DataFrame) -> pl.DataFrame:
    return table.sort("updated_at", "id").group_by("id", maintain_order=True).last().sort("id")


def assert_matches_truth(table: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Latest row per id equals the server's current record, column by column."""
    duplicates = table.group_by("id", "updated_at").len().filter(pl.col("len") > 1)
    assert duplicates.is_empty(), f"duplicate (id, updated_at) rows: {duplicates}"
    actual = latest_per_id(table)
    missing = set(expected["id"]) - set(actual["id"])
    extra = set(actual["id"]) - set(expected["id"])
    assert not missing, f"{len(missing)} records missing, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} unexpected records, e.g. {sorted(extra)[:3]}"
    expected = expected.sort("id")
    for column in expected.columns:
        assert column in actual.columns, f"column {column} missing"
        assert actual[column].to_list() == expected[column].to_list(), f"column {column} differs"


def run_metadata(result: dg.ExecuteInProcessResult, name: str) -> dict:
    """What a range run said about `name`: the run's figures (`run/...`, the same on every
    partition's materialization; prefix dropped), the per-partition facts of the first
    partition, and `dagster/row_count` summed over the run's partitions (each carries its own
    day's rows)."""
    events = result.asset_materializations_for_node(name)
    assert events
    runs = [{k: v.value for k, v in e.metadata.items() if k.startswith("run/")} for e in events]
    assert all(run == runs[0] for run in runs), "run-wide figures differ between partitions"
    out = {k: v.value for k, v in events[0].metadata.items() if not k.startswith("run/")}
    out.update({k.removeprefix("run/"): v for k, v in runs[0].items()})
    out["dagster/row_count"] = sum(e.metadata["dagster/row_count"].value for e in events)
    if "rows_written" in out:
        assert out["dagster/row_count"] <= out["rows_written"]
    return out


def materialize_command(select: str, first: str, last: str) -> list[str]:
    """`dagster asset materialize` over a partition range, exactly as README tells users."""
    return [
        str(Path(sys.executable).with_name("dagster")),
        *("asset", "materialize", "-m", "kustomer_assets.definitions"),
        *("--select", select, "--partition-range", f"{first}...{last}"),
    ]
