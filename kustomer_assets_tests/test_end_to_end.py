"""Real Dagster materializations against the emulator on loopback, compared with its truth."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from kustomer_assets.assets.raw import build_entity_asset
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import CONVERSATIONS, CUSTOMERS, ENTITIES
from kustomer_assets_tests.conftest import (
    TEST_KEY,
    Lake,
    assert_matches_truth,
    day_range,
    emulator_config,
    materialize_command,
    materialize_range,
    resources,
    run_metadata,
    truth_in_window,
)

ASSETS = [build_entity_asset(spec) for spec in (CONVERSATIONS, CUSTOMERS)]


def expected_table(emulator: Emulator, spec, first: str, last: str) -> pl.DataFrame:
    return spec.mapper.frame(truth_in_window(emulator, spec, first, last))


def materialization_metadata(result: dg.ExecuteInProcessResult, name: str) -> dict:
    return run_metadata(result, name)


def test_backfill_matches_truth_with_metadata(emulator: Emulator, lake: Lake) -> None:
    first, last = day_range(10)
    result = materialize_range(ASSETS, first, last, resources(emulator.base_url, lake))
    assert result.success
    for spec in (CONVERSATIONS, CUSTOMERS):
        expected = expected_table(emulator, spec, first, last)
        assert expected.height > 50
        table = lake.table(spec.name)
        assert_matches_truth(table, expected)
        metadata = materialization_metadata(result, spec.name)
        rows, outside = metadata["rows_written"], metadata["rows_outside_window"]
        assert rows == metadata["api_reported_total"]
        # Referenced customers last updated before the range are merged into their own day.
        assert rows <= table.height <= rows + outside
        assert metadata["kustomer/requests"] >= 1
        assert "kustomer/retries" in metadata and "kustomer/wait_seconds" in metadata
        columns = {c.name for c in metadata["dagster/column_schema"].columns}
        assert {"id", "updated_at", "partition_date"} <= columns
    conversations = lake.table("conversations")
    assert conversations.schema["updated_at"] == pl.Datetime("us", "UTC")
    custom = [c for c in conversations.columns if c.startswith("custom_")]
    assert any(c.endswith("_num") for c in custom) and any(c.endswith("_at") for c in custom)


def test_rematerializing_leaves_the_table_unchanged(emulator: Emulator, lake: Lake) -> None:
    first, last = day_range(5)
    res = resources(emulator.base_url, lake)
    materialize_range(ASSETS[:1], first, last, res)
    before = lake.table("conversations").sort("id", "updated_at")
    materialize_range(ASSETS[:1], first, last, res)
    after = lake.table("conversations").sort("id", "updated_at")
    assert after.equals(before)
    # A single day inside the range is replaced exactly, not appended.
    materialize_range(ASSETS[:1], last, last, res)
    assert lake.table("conversations").sort("id", "updated_at").equals(before)


def test_faults_and_throttling_still_match_truth(lake: Lake) -> None:
    config = emulator_config(fault_rate=0.15)
    with Emulator(config) as server:
        first, last = day_range(10)
        result = materialize_range(ASSETS, first, last, resources(server.base_url, lake))
        assert result.success
        for spec in (CONVERSATIONS, CUSTOMERS):
            assert_matches_truth(lake.table(spec.name), expected_table(server, spec, first, last))
        retries = sum(
            materialization_metadata(result, s.name)["kustomer/retries"]
            for s in (CONVERSATIONS, CUSTOMERS)
        )
        assert retries > 0


def test_deep_paging_cap_and_large_ties_lose_nothing(lake: Lake) -> None:
    # 2 pages of 100 per query: far below a day's records and below the >=300-record tie.
    config = emulator_config(
        search_max_pages=2, max_page_size={"search": 100, "default": 100}, days=10
    )
    with Emulator(config) as server:
        first, last = day_range(10)
        result = materialize_range(ASSETS[:1], first, last, resources(server.base_url, lake))
        expected = expected_table(server, CONVERSATIONS, first, last)
        table = lake.table("conversations")
        assert_matches_truth(table, expected)
        ties = expected.group_by("updated_at").len().filter(pl.col("len") >= 300)
        assert not ties.is_empty(), "emulator should hold a >=300-record tie"
        metadata = materialization_metadata(result, "conversations")
        assert metadata["kustomer/window_narrowings"] > 0


@pytest.mark.parametrize("refusal", ["404", "400"])
def test_deep_paging_refused_with_an_error_status(lake: Lake, refusal: str) -> None:
    config = emulator_config(
        search_max_pages=3, deep_paging_refusal=refusal, max_page_size={"search": 100}
    )
    with Emulator(config) as server:
        first, last = day_range(6)
        materialize_range(ASSETS[:1], first, last, resources(server.base_url, lake))
        expected = expected_table(server, CONVERSATIONS, first, last)
        assert_matches_truth(lake.table("conversations"), expected)


def test_wrong_key_fails_clearly_and_never_shows_the_key(
    emulator: Emulator, lake: Lake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first, last = day_range(2)
    wrong = "wrong-key-ZZZ-should-not-leak"
    result = materialize_range(
        ASSETS[:1],
        first,
        last,
        resources(emulator.base_url, lake, api_key=wrong),
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    text = str(failure.to_string())
    assert "401" in text and "/v1/" in text
    assert wrong not in text and wrong not in caplog.text


def test_secret_absent_from_logs_events_and_metadata(
    emulator: Emulator, lake: Lake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first, last = day_range(3)
    with dg.instance_for_test() as instance:
        result = materialize_range(
            ASSETS, first, last, resources(emulator.base_url, lake), instance=instance
        )
        assert result.success
        records = instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        )
        logs = instance.all_logs(result.run_id)
        run = instance.get_run_by_id(result.run_id)
    dumped = "\n".join(str(r.event_log_entry) for r in records)
    dumped += "\n".join(str(entry) for entry in logs) + str(run.run_config) + str(run.tags)
    assert records and logs
    assert TEST_KEY not in dumped
    assert TEST_KEY not in caplog.text


def test_missing_optional_role_skips_and_required_role_fails(lake: Lake) -> None:
    roles = frozenset(
        {
            "org.permission.conversation.read",
            "org.permission.search.create",
        }
    )
    config = emulator_config(api_keys={TEST_KEY: roles})
    with Emulator(config) as server:
        first, last = day_range(3)
        result = materialize_range(ASSETS, first, last, resources(server.base_url, lake))
        assert result.success
        skipped = materialization_metadata(result, "customers")
        assert skipped["skipped"] is True
        assert skipped["missing_role"] == "org.permission.customer.read"
        assert skipped["dagster/row_count"] == 0
        assert lake.table("conversations").height > 0

    config = emulator_config(api_keys={TEST_KEY: frozenset({"org.permission.search.create"})})
    with Emulator(config) as server:
        result = materialize_range(
            ASSETS[:1], first, last, resources(server.base_url, lake), raise_on_error=False
        )
        assert not result.success
        error = result.get_step_failure_events()[0].step_failure_data.error.to_string()
        assert "org.permission.conversation.read" in error
        assert "new key" in error.lower()


def test_acceptance_command_line_with_faults(tmp_path: Path) -> None:
    """The exact CLI from the issue, with 10% of responses failing, on a fresh instance."""
    config = emulator_config(fault_rate=0.10, days=8)
    delta = tmp_path / "delta"
    with Emulator(config) as server:
        first, last = day_range(8)
        env = {
            **os.environ,
            "KUSTOMER_BASE_URL": server.base_url,
            "KUSTOMER_API_KEY": TEST_KEY,
            "KUSTOMER_DELTA_ROOT": str(delta),
            "DAGSTER_HOME": str(tmp_path / "home"),
            "KUSTOMER_ORG_REQUESTS_PER_MINUTE": "5000",
            "KUSTOMER_SEARCH_REQUESTS_PER_MINUTE": "5000",
        }
        (tmp_path / "home").mkdir()
        command = materialize_command("conversations,customers", first, last)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-3000:]
        assert TEST_KEY not in output
        for spec in (CONVERSATIONS, CUSTOMERS):
            table = pl.read_delta(str(delta / spec.name))
            assert_matches_truth(table, expected_table(server, spec, first, last))


def test_definitions_snapshot() -> None:
    """The whole graph as the UI shows it: catches a renamed asset or a lost check."""
    from kustomer_assets.definitions import defs

    defs.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {spec.name for spec in ENTITIES} | {"feedback", "removed_records"}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and node.owners and node.kinds, key
        assert node.freshness_policy is not None, key
        if key.to_user_string() == "feedback":
            assert node.partitions_def is None and node.automation_condition is not None
        elif key.to_user_string() == "removed_records":
            assert node.partitions_def is None and node.pools == {"kustomer_api"}
        else:
            assert node.partitions_def is not None
            assert node.backfill_policy == dg.BackfillPolicy.single_run()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    for spec in ENTITIES:
        assert (spec.name, "unique_id_updated_at") in checks
        assert (spec.name, "role_granted") in checks
        assert (spec.name, "partition_fresh") in checks
    assert ("conversations", "complete_vs_api") in checks
    assert ("messages", "known_conversation") in checks
    assert ("conversations", "known_customer") in checks
    assert any(asset == "feedback" for asset, _ in checks)
    assert {s.name for s in defs.sensors or []} >= {"kustomer_changes"}
    assert {s.name for s in defs.schedules or []} == {
        "finalize_yesterday",
        "kustomer_lake_maintenance_weekly",
    }
    assert "kustomer_key_check" in {job.name for job in defs.jobs or []}


def test_dagster_definitions_validate_passes() -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUSTOMER_API_KEY": "validate-only"},
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "All code locations passed validation" in done.stdout + done.stderr


def test_customers_referenced_by_the_window_are_fetched_once(lake: Lake) -> None:
    """Conversations of the last days point at customers last updated weeks ago: they are
    fetched by id into their own day, and a rerun does not fetch them again."""
    with Emulator(emulator_config(days=20)) as server:
        first, last = day_range(4)
        res = resources(server.base_url, lake)
        result = materialize_range(ASSETS, first, last, res)
        metadata = materialization_metadata(result, "customers")
        assert metadata["rows_outside_window"] > 0
        expected = expected_table(server, CUSTOMERS, first, last)
        assert_matches_truth(lake.table("customers"), expected)
        rerun = materialization_metadata(materialize_range(ASSETS, first, last, res), "customers")
        assert rerun["rows_outside_window"] == 0
        assert_matches_truth(lake.table("customers"), expected)


def test_a_429_storm_is_waited_out(lake: Lake) -> None:
    """A search budget of 3 requests per 1-second window forces real 429s and waits."""
    config = emulator_config(
        search_rate_limit=3, rate_window_seconds=1.0, max_page_size={"search": 100}
    )
    with Emulator(config) as server:
        first, last = day_range(4)
        result = materialize_range(ASSETS[:1], first, last, resources(server.base_url, lake))
        metadata = materialization_metadata(result, "conversations")
        assert metadata["kustomer/rate_limit_waits"] > 0
        assert metadata["kustomer/wait_seconds"] > 0
        assert_matches_truth(
            lake.table("conversations"), expected_table(server, CONVERSATIONS, first, last)
        )


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"base_url_override": None, "subdomain": "not a host!"}, "KUSTOMER_SUBDOMAIN"),
        ({"base_url_override": "http://example.com"}, "https"),
        ({"api_key": ""}, "KUSTOMER_API_KEY"),
    ],
)
def test_bad_settings_fail_before_any_request(
    emulator: Emulator, lake: Lake, settings: dict, needle: str
) -> None:
    first, last = day_range(1)
    before = emulator.stats.get("requests", 0)
    settings = dict(settings)
    base_url = settings.pop("base_url_override", emulator.base_url)
    result = materialize_range(
        ASSETS[:1],
        first,
        last,
        resources(base_url, lake, **settings),
        raise_on_error=False,
    )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert needle in error
    assert emulator.stats.get("requests", 0) == before


def test_retried_backfill_skips_windows_an_earlier_attempt_finished(
    emulator: Emulator, lake: Lake
) -> None:
    """Windows are committed with the root run id; a re-execution (same root run) does not
    fetch them again, and the table equals a clean backfill."""
    first, last = day_range(10)
    first_window_last = (date.fromisoformat(first) + timedelta(days=6)).isoformat()
    res = resources(emulator.base_url, lake)
    tags = {"dagster/root_run_id": "attempt-root"}
    # The earlier attempt got through its first window (7 days) and then died.
    dg.materialize(
        ASSETS[:1],
        resources=res,
        tags={
            **tags,
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": first_window_last,
        },
    )
    searches = emulator.stats.get("requests.search", 0)
    retry = dg.materialize(
        ASSETS[:1],
        resources=res,
        tags={
            **tags,
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
    )
    metadata = materialization_metadata(retry, "conversations")
    assert metadata["windows"] == 2 and metadata["windows_resumed"] == 1
    # Only the second window is read: its cursor pages and the count that proves it complete
    # (how many pages depends on how many conversations the emulator's "now" puts there).
    second = [
        r
        for r in truth_in_window(emulator, CONVERSATIONS, first, last)
        if r["attributes"]["updatedAt"][:10] > first_window_last
    ]
    spent = emulator.stats.get("requests.search", 0) - searches
    assert spent == metadata["kustomer/search_requests"]
    assert spent <= math.ceil(max(len(second), 1) / 499) + 1, (spent, len(second))
    assert_matches_truth(
        lake.table("conversations"), expected_table(emulator, CONVERSATIONS, first, last)
    )


SERVER_VARIANTS = {
    "results-cap-and-small-pages": {
        "search_max_results": 250,
        "max_page_size": {"search": 50, "default": 20, "users": 20, "teams": 20},
    },
    "seconds-reset-no-retry-after": {
        "reset_header_mode": "seconds",
        "send_retry_after": False,
        "search_rate_limit": 4,
        "rate_window_seconds": 1.0,
    },
    "401-for-roles-and-404-deep-pages": {
        "permission_error_status": 401,
        "deep_paging_refusal": "404",
        "search_max_pages": 2,
        "max_page_size": {"search": 100},
    },
    "faults-of-every-kind": {"fault_rate": 0.2},
}


@pytest.mark.parametrize("variant", sorted(SERVER_VARIANTS))
def test_every_reading_of_the_inferred_api_details(lake: Lake, variant: str) -> None:
    """The API notes leave some behaviour open ("inferred"); each reading gives the truth."""
    from kustomer_assets.assets.raw import entity_assets

    chosen = [a for a in entity_assets if a.key.to_user_string() in {"conversations", "users"}]
    with Emulator(emulator_config(days=6, **SERVER_VARIANTS[variant])) as server:
        first, last = day_range(6)
        materialize_range(chosen, first, last, resources(server.base_url, lake))
        assert_matches_truth(
            lake.table("conversations"), expected_table(server, CONVERSATIONS, first, last)
        )
        users = lake.table("users")
        assert sorted(users["id"]) == sorted(r["id"] for r in server.truth("user"))


def test_each_partition_carries_its_own_row_count(emulator: Emulator, lake: Lake) -> None:
    """A range run's partitions each say how many rows their day holds, so the UI's plots are
    true; the run's own figures are labelled `run/...` and equal on every partition."""
    first, last = day_range(9)
    result = materialize_range(ASSETS[:1], first, last, resources(emulator.base_url, lake))
    events = result.asset_materializations_for_node("conversations")
    assert sorted(e.partition for e in events) == [
        (date.fromisoformat(first) + timedelta(days=i)).isoformat() for i in range(9)
    ]
    per_day = dict(
        lake.table("conversations")
        .group_by("partition_date")
        .len()
        .select(pl.col("partition_date").cast(pl.Utf8), "len")
        .iter_rows()
    )
    counts = {e.partition: e.metadata["dagster/row_count"].value for e in events}
    assert counts == {day: per_day.get(day, 0) for day in counts}
    assert len(set(counts.values())) > 1, "every day the same count: not per partition"
    assert all(e.metadata["run/rows_written"].value == sum(counts.values()) for e in events)
