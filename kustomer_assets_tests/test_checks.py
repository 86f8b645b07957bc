"""Quality and freshness checks: each passes on a real load and fails when its condition is
broken on purpose (a duplicated row, deleted rows, an orphan, a stale day, a bad feedback)."""

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from deltalake import DeltaTable

from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.checks.completeness import COMPLETE_VS_API
from kustomer_assets.checks.feedback import ONE_ROW_PER_LIVE_CONVERSATION
from kustomer_assets.checks.freshness import (
    ENV_FAIL_HOURS,
    ENV_WARN_HOURS,
    FreshnessWindows,
    freshness_policy,
    freshness_windows,
    latest_materializations,
    partition_fresh_check,
)
from kustomer_assets.checks.quality import quality_checks
from kustomer_assets.checks.references import reference_rules
from kustomer_assets.checks.uniqueness import UNIQUE_VERSIONS
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import ENTITIES, SearchSource
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets_tests.conftest import (
    Lake,
    day_range,
    emulator_config,
    latest_per_id,
    materialize_range,
    resources,
)

LOADED = ("conversations", "messages", "customers", "notes", "satisfaction")
DAYS = 3


@dg.asset(name="feedback", deps=[dg.AssetKey("conversations")])
def reference_feedback(lake: DeltaLakeResource) -> None:
    """Stand-in for the real feedback asset: one row per live conversation."""
    store = lake.store()
    conversations = latest_per_id(store.scan("conversations").collect())
    live = conversations.filter(~pl.col("deleted").fill_null(False))
    live.select(pl.col("id").alias("conversation_id")).write_delta(
        store.uri("feedback"), mode="overwrite"
    )


ASSETS = [a for a in entity_assets if a.key.path[-1] in LOADED]
CHECKS = quality_checks([*ASSETS, reference_feedback])


def check(asset: str, name: str) -> dg.AssetChecksDefinition:
    return next(
        c
        for c in CHECKS
        if c.check_key.asset_key == dg.AssetKey(asset) and c.check_key.name == name
    )


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):
    """Three days (today included) of five tables plus feedback, every check run with them."""
    lake = Lake(tmp_path_factory.mktemp("checks") / "delta")
    with Emulator(emulator_config()) as server, dg.instance_for_test() as instance:
        first, last = day_range(DAYS)
        res = resources(server.base_url, lake)
        run = materialize_range([*ASSETS, *CHECKS], first, last, res, instance=instance)
        feedback = dg.materialize(
            [reference_feedback, *ASSETS, *CHECKS],
            selection=dg.AssetSelection.assets(reference_feedback).without_checks()
            | dg.AssetSelection.checks(check("feedback", ONE_ROW_PER_LIVE_CONVERSATION)),
            resources=res,
            instance=instance,
        )
        yield server, lake, instance, run, feedback, first, last


def run_checks(
    instance: dg.DagsterInstance,
    lake_root: Path,
    checks: list[dg.AssetChecksDefinition],
    tags: dict[str, str] | None = None,
    assets: list | None = None,
) -> dict[tuple[str, str, str | None], dg.AssetCheckEvaluation]:
    """Run only `checks` (no materialization) the way the UI's "execute check" does."""
    result = dg.materialize(
        [*(assets or [*ASSETS, reference_feedback]), *checks],
        selection=dg.AssetSelection.checks(*checks),
        # Kustomer is never called: the assets are not selected, only declared.
        resources=resources("http://127.0.0.1:9", Lake(lake_root)),
        instance=instance,
        tags=tags or {},
    )
    return {
        (e.asset_key.path[-1], e.check_name, e.partition): e
        for e in result.get_asset_check_evaluations()
    }


@pytest.fixture
def broken_lake(loaded, tmp_path: Path) -> Path:
    """A copy of the loaded lake a test may damage; the instance's materializations still apply."""
    _, lake, *_ = loaded
    copy = tmp_path / "delta"
    shutil.copytree(lake.root, copy)
    return copy


def test_every_check_passes_on_a_clean_load(loaded) -> None:
    *_, run, feedback, _, last = loaded
    evaluations = [*run.get_asset_check_evaluations(), *feedback.get_asset_check_evaluations()]
    failed = [
        (e.asset_key.path[-1], e.check_name, e.partition, e.description)
        for e in evaluations
        if not e.passed
    ]
    assert not failed
    names = {(e.asset_key.path[-1], e.check_name) for e in evaluations}
    assert {(spec, UNIQUE_VERSIONS) for spec in LOADED} <= names
    assert ("messages", "known_conversation") in names
    assert ("conversations", "known_customer") in names
    assert ("feedback", ONE_ROW_PER_LIVE_CONVERSATION) in names
    # The single-run backfill still gets one result per day for the partitioned checks.
    days = {e.partition for e in evaluations if e.check_name == COMPLETE_VS_API}
    assert days == {
        (datetime.fromisoformat(last) - timedelta(days=i)).date().isoformat() for i in range(DAYS)
    }
    complete = next(e for e in evaluations if e.check_name == COMPLETE_VS_API)
    assert complete.metadata["api_reported_total"].value == complete.metadata["rows_written"].value


def test_range_results_point_at_the_materialization_they_judged(loaded) -> None:
    """Per-day evaluations of a range run carry the materialization they judged, as Dagster's
    own results do, so the UI keeps each day's status until that day is rewritten."""
    _, _, instance, run, *_ = loaded
    key = dg.AssetKey("conversations")
    evaluations = [
        e
        for e in run.get_asset_check_evaluations()
        if e.asset_key == key and e.check_name in (COMPLETE_VS_API, UNIQUE_VERSIONS)
    ]
    assert len(evaluations) == 2 * DAYS
    latest = latest_materializations(instance, key, [e.partition for e in evaluations])
    for evaluation in evaluations:
        target = evaluation.target_materialization_data
        assert target is not None, evaluation.partition
        record = latest[evaluation.partition]
        assert (target.storage_id, target.run_id) == (record.storage_id, record.run_id)


def test_checks_are_generated_from_the_spec_table() -> None:
    every = quality_checks(entity_assets)
    keys = {(c.check_key.asset_key.path[-1], c.check_key.name) for c in every}
    for spec in ENTITIES:
        assert (spec.name, UNIQUE_VERSIONS) in keys
        assert (spec.name, "partition_fresh") in keys
        assert ((spec.name, COMPLETE_VS_API) in keys) == isinstance(spec.source, SearchSource)
    rules = {(r.table, r.column, r.target) for r in reference_rules()}
    assert rules == {
        ("messages", "conversation_id", "conversations"),
        ("notes", "conversation_id", "conversations"),
        ("satisfaction", "conversation_id", "conversations"),
        ("conversations", "customer_id", "customers"),
    }
    # No feedback asset, no feedback check: the list always fits its Definitions.
    assert not any(c.check_key.asset_key == dg.AssetKey("feedback") for c in every)


def test_duplicate_version_fails_only_its_partition(loaded, broken_lake: Path) -> None:
    _, _, instance, _, _, first, last = loaded
    uri = str(broken_lake / "conversations")
    row = pl.read_delta(uri).filter(
        pl.col("partition_date") == datetime.fromisoformat(first).date()
    )
    row.head(1).write_delta(uri, mode="append")
    unique = check("conversations", UNIQUE_VERSIONS)
    broken = run_checks(instance, broken_lake, [unique], {"dagster/partition": first})
    result = broken[("conversations", UNIQUE_VERSIONS, first)]
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["duplicate_rows"].value == 1
    assert result.metadata["sample_ids"].value == [row["id"][0]]
    other = run_checks(instance, broken_lake, [unique], {"dagster/partition": last})
    assert other[("conversations", UNIQUE_VERSIONS, last)].passed


def test_deleted_rows_fail_completeness(loaded, broken_lake: Path) -> None:
    _, _, instance, _, _, first, last = loaded
    uri = str(broken_lake / "messages")
    victim = pl.read_delta(uri).filter(
        pl.col("partition_date") == datetime.fromisoformat(first).date()
    )
    DeltaTable(uri).delete(f"id = '{victim['id'][0]}'")
    complete = check("messages", COMPLETE_VS_API)
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    results = run_checks(instance, broken_lake, [complete], tags)
    assert len(results) == DAYS and not any(r.passed for r in results.values())
    result = results[("messages", COMPLETE_VS_API, first)]
    reported = result.metadata["api_reported_total"].value
    assert result.metadata["rows_in_table_for_window"].value == reported - 1
    # The window includes today, which is still changing: a warning, not an error.
    assert result.severity == dg.AssetCheckSeverity.WARN
    clean = run_checks(instance, loaded[1].root, [complete], tags)
    assert all(r.passed for r in clean.values())


def test_incomplete_closed_day_is_an_error(loaded, tmp_path: Path) -> None:
    server, _, _, _, _, first, _ = loaded
    day = (datetime.fromisoformat(first) - timedelta(days=2)).date().isoformat()
    lake = Lake(tmp_path / "delta")
    conversations = [a for a in ASSETS if a.key.path[-1] == "conversations"]
    complete = check("conversations", COMPLETE_VS_API)
    with dg.instance_for_test() as instance:
        dg.materialize(
            conversations,
            partition_key=day,
            resources=resources(server.base_url, lake),
            instance=instance,
        )
        stored = lake.table("conversations")
        served = [
            c for c in server.truth("conversation") if c["attributes"]["updatedAt"][:10] == day
        ]
        assert stored.height == len(served) > 0, (day, stored.height, len(served))
        victim = stored["id"][0]
        DeltaTable(str(lake.root / "conversations")).delete(f"id = '{victim}'")
        results = run_checks(
            instance, lake.root, [complete], {"dagster/partition": day}, assets=conversations
        )
    result = results[("conversations", COMPLETE_VS_API, day)]
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert "the table holds" in (result.description or "")


def test_orphan_message_warns_with_its_id(loaded, broken_lake: Path) -> None:
    _, _, instance, *_ = loaded
    uri = str(broken_lake / "messages")
    template = pl.read_delta(uri).head(2)
    loaded_days = pl.read_delta(str(broken_lake / "conversations"))["partition_date"]
    first_loaded = datetime.combine(loaded_days.min(), datetime.min.time(), UTC)
    orphan_id, old_id = "f" * 24, "e" * 24
    rows = template.with_columns(
        pl.Series("id", [orphan_id, old_id]),
        pl.lit("0" * 24).alias("conversation_id"),
        pl.Series(
            "created_at",
            [
                first_loaded + timedelta(hours=1),
                # Created before conversations' first loaded day: may legitimately be unknown.
                first_loaded - timedelta(days=3),
            ],
        ).cast(template.schema["created_at"]),
    )
    rows.write_delta(uri, mode="append")
    known = check("messages", "known_conversation")
    result = run_checks(instance, broken_lake, [known])[("messages", "known_conversation", None)]
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["orphans"].value == 1
    assert result.metadata["sample_ids"].value == [orphan_id]
    assert result.metadata["sample_missing_target_ids"].value == ["0" * 24]


def test_feedback_duplicates_and_gaps_fail(loaded, broken_lake: Path) -> None:
    _, _, instance, *_ = loaded
    uri = str(broken_lake / "feedback")
    feedback = pl.read_delta(uri)
    one = check("feedback", ONE_ROW_PER_LIVE_CONVERSATION)
    pl.concat([feedback, feedback.head(1)]).write_delta(uri, mode="overwrite")
    result = run_checks(instance, broken_lake, [one])[("feedback", one.check_key.name, None)]
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["duplicated_conversations"].value == 1
    assert result.metadata["sample_duplicated_ids"].value == [feedback["conversation_id"][0]]
    feedback.tail(-1).write_delta(uri, mode="overwrite")
    result = run_checks(instance, broken_lake, [one])[("feedback", one.check_key.name, None)]
    assert not result.passed and result.metadata["missing_conversations"].value == 1


def test_partition_fresh_warns_then_fails_as_loads_age(loaded) -> None:
    """Ages come from the instance's materialization times; the windows shrink to seconds
    instead of the clock jumping days (which would move "today" too)."""
    _, lake, instance, *_ = loaded
    key = dg.AssetKey("conversations")
    cases = {
        "fresh": (FreshnessWindows(timedelta(hours=26), timedelta(hours=50)), 0),
        "late": (FreshnessWindows(timedelta(seconds=1), timedelta(hours=1)), 2),
        "stale": (FreshnessWindows(timedelta(seconds=1), timedelta(seconds=2)), 5),
    }
    outcomes = {}
    for case, (windows, later) in cases.items():
        fresh = partition_fresh_check(key, windows, clock=lambda s=later: time.time() + s)
        result = run_checks(instance, lake.root, [fresh])[
            ("conversations", "partition_fresh", None)
        ]
        outcomes[case] = (result.passed, result.severity)
    assert outcomes["fresh"][0] is True
    assert outcomes["late"] == (False, dg.AssetCheckSeverity.WARN)
    assert outcomes["stale"] == (False, dg.AssetCheckSeverity.ERROR)


def test_partition_never_loaded_is_stale(loaded) -> None:
    _, lake, instance, *_ = loaded
    kobjects = [a for a in entity_assets if a.key.path[-1] == "kobjects"]
    fresh = partition_fresh_check(
        dg.AssetKey("kobjects"), FreshnessWindows(warn=timedelta(hours=1), fail=timedelta(hours=2))
    )
    results = run_checks(instance, lake.root, [fresh], assets=kobjects)
    result = results[("kobjects", "partition_fresh", None)]
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    assert yesterday in result.metadata["never_loaded"].value


def test_freshness_windows_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert freshness_windows() == FreshnessWindows(timedelta(hours=26), timedelta(hours=50))
    monkeypatch.setenv(ENV_WARN_HOURS, "2")
    monkeypatch.setenv(ENV_FAIL_HOURS, "4.5")
    policy = freshness_policy()
    assert policy.warn_window.to_timedelta() == timedelta(hours=2)
    assert policy.fail_window.to_timedelta() == timedelta(hours=4.5)
    monkeypatch.setenv(ENV_WARN_HOURS, "6")
    with pytest.raises(ValueError, match=ENV_WARN_HOURS):
        freshness_windows()
    monkeypatch.setenv(ENV_FAIL_HOURS, "soon")
    with pytest.raises(ValueError, match=ENV_FAIL_HOURS):
        freshness_windows()
