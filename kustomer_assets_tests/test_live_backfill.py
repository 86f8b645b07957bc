"""A backfill while the org changes under it: the acceptance test of paging that cannot skip.

The emulator changes records of the window being paged after every search page (its `churn`),
as agents replying and re-tagging do. Every record nobody touched must be in the table at its
exact version; a touched one at one of its versions; no (id, updated_at) twice. Page-number
paging failed this (14 of 2,538 conversations lost, exit 0).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from kustomer_assets.assets.raw import build_entity_asset
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import CONVERSATIONS, MESSAGES
from kustomer_assets.records import parse_timestamp
from kustomer_assets_tests.conftest import (
    Lake,
    emulator_config,
    materialize_range,
    resources,
    run_metadata,
)

SMALL_PAGES = {"search_page_size": 40}
"""Many pages per window, so churn lands between many page requests."""


def _range(first_days_ago: int, last_days_ago: int) -> tuple[str, str]:
    today = datetime.now(UTC).date()
    return (
        (today - timedelta(days=first_days_ago)).isoformat(),
        (today - timedelta(days=last_days_ago)).isoformat(),
    )


def _updated(record: dict) -> datetime:
    stamp = parse_timestamp(record["attributes"]["updatedAt"])
    assert stamp is not None
    return stamp


def _check_against_truth(
    server: Emulator,
    table: pl.DataFrame,
    kustomer_type: str,
    before: dict[str, datetime],
    first: str,
    last: str,
) -> tuple[int, int]:
    """(untouched records checked, touched records) after asserting the guarantees."""
    start = datetime.fromisoformat(first).replace(tzinfo=UTC)
    end = datetime.fromisoformat(last).replace(tzinfo=UTC) + timedelta(days=1)
    dupes = table.group_by("id", "updated_at").len().filter(pl.col("len") > 1)
    assert dupes.is_empty(), f"duplicate versions: {dupes}"
    touched = server.churned(kustomer_type)
    versions: dict[str, set[datetime]] = {}
    for rid, updated in table.select("id", "updated_at").iter_rows():
        versions.setdefault(rid, set()).add(updated)
    now = {r["id"]: _updated(r) for r in server.truth(kustomer_type)}
    untouched = {i: u for i, u in before.items() if i not in touched and start <= u < end}
    lost = [i for i in untouched if i not in versions]
    assert not lost, f"{len(lost)} untouched {kustomer_type}s lost, e.g. {lost[:3]}"
    wrong = [i for i, u in untouched.items() if versions[i] != {u}]
    assert not wrong, f"untouched {kustomer_type}s at another version: {wrong[:3]}"
    for rid in touched & set(versions):
        # Any version it had during the run: between its version before and its version now.
        lo = before.get(rid, start)
        assert all(lo <= v <= now[rid] for v in versions[rid]), rid
    return len(untouched), len(touched)


@pytest.mark.parametrize(
    ("name", "days"),
    [("past_window", (20, 14)), ("todays_window", (5, 0))],
)
def test_records_changed_between_page_requests_lose_nothing(
    lake: Lake, name: str, days: tuple[int, int]
) -> None:
    config = emulator_config(
        # 30 days: the emulator puts most recent activity in the last days, so a 10-day org
        # can leave a past week nearly empty depending on the hour it is generated.
        days=30,
        churn={"conversation": 2, "message": 3},
        search_rate_limit=10_000,
        org_rate_limit=10_000,
    )
    first, last = _range(*days)
    assets = [build_entity_asset(spec) for spec in (CONVERSATIONS, MESSAGES)]
    with Emulator(config) as server:
        server.set_churn({})  # take the "before" picture first
        before = {
            t: {r["id"]: _updated(r) for r in server.truth(t)} for t in ("conversation", "message")
        }
        server.set_churn({"conversation": 2, "message": 3})
        result = materialize_range(
            assets, first, last, resources(server.base_url, lake, **SMALL_PAGES)
        )
        assert result.success
        checked = {}
        for spec in (CONVERSATIONS, MESSAGES):
            table = lake.table(spec.name)
            checked[spec.name] = _check_against_truth(
                server, table, spec.kustomer_type, before[spec.kustomer_type], first, last
            )
        metadata = run_metadata(result, "conversations")
    untouched, touched = checked["conversations"]
    assert untouched > 100 and touched > 10, checked
    assert metadata["changed_during_run"] > 0
    assert "ids" in metadata["verified_by"]
    assert metadata["ids_unaccounted"] == 0
    if name == "todays_window":
        # Every version of a record touched today stays in the run's range: one is stored.
        assert server.churned("conversation") <= set(lake.table("conversations")["id"])
