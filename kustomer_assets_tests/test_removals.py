"""`removed_records` against the emulator: hard deletes and merges are found by ids, records
touched while the listing pages are not marked, feedback drops or re-points them, and the run
costs exactly the README's formula."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import polars as pl
import pytest

from kustomer_assets import removals
from kustomer_assets.assets.feedback import feedback
from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.assets.removals import removed_records
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import CUSTOMERS
from kustomer_assets.feedback.build import build_feedback
from kustomer_assets.lake import DeltaStore
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets_tests.conftest import (
    Lake,
    day_range,
    emulator_config,
    latest_per_id,
    materialize_range,
    resources,
)

DAYS = 4
PAGE_SIZE = 500
LIMITS = {"org_rate_limit": 50_000, "search_rate_limit": 5_000}
"""No 429 may add a retry to the request count the formula is checked against."""
RAW = [
    asset
    for asset in entity_assets
    if asset.key.to_user_string() in ("conversations", "customers", "messages", "notes")
]
CONVERSATIONS_ONLY = [a for a in RAW if a.key.to_user_string() == "conversations"]


def metadata_of(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    event = result.asset_materializations_for_node(node)[0]
    return {key: value.value for key, value in event.metadata.items()}


def reconcile(server: Emulator, res: dict[str, object], **config: object) -> dict[str, Any]:
    """One materialization; its `requests` are checked against what the server received."""
    received = server.stats.get("requests", 0)
    result = dg.materialize(
        [removed_records],
        resources=res,
        run_config={"ops": {"removed_records": {"config": config}}} if config else None,
    )
    metadata = metadata_of(result, "removed_records")
    assert server.stats.get("requests", 0) - received == metadata["requests"]
    return metadata


def build(lake: Lake) -> dict[str, Any]:
    result = dg.materialize([feedback], resources={"lake": DeltaLakeResource(root=str(lake.root))})
    return metadata_of(result, "feedback")


def formula(metadata: dict[str, Any]) -> int:
    """The README's cost: per listed window one count plus one page per 500 ids it counted,
    then one GET per new candidate (conversations, customers) and per customer answering 404
    that has a conversation of ours, or the re-listing windows."""

    def listing(summary: dict[str, Any] | None) -> int:
        if summary is None:
            return 0
        pages = sum(math.ceil(w["counted"] / PAGE_SIZE) for w in summary["windows"])
        return summary["count_requests"] + pages

    return sum(
        listing(entity["listing"])
        + entity["looked_up_by_id"]
        + entity["referrers_looked_up"]
        + listing(entity["relisting"])
        for entity in metadata["reconciliation"].values()
    )


def marked(lake: Lake) -> dict[str, set[str]]:
    table = lake.table("removed_records")
    return {
        entity: set(table.filter(pl.col("entity") == entity)["id"])
        for entity in ("conversations", "messages", "customers", "notes")
    }


def survivors(lake: Lake) -> dict[str, str | None]:
    table = lake.table("removed_records").filter(pl.col("entity") == "customers")
    return dict(zip(table["id"], table["merged_into_id"], strict=True))


def assert_incremental_equals_full(lake: Lake) -> pl.DataFrame:
    incremental = lake.table("feedback").sort("conversation_id")
    full = build_feedback(DeltaStore(str(lake.root)), None).sort("conversation_id")
    assert incremental.select(sorted(incremental.columns)).equals(full.select(sorted(full.columns)))
    return incremental


def choose_removals(lake: Lake) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Three conversations and four messages of other live conversations to delete (live:
    feedback holds a row whose transcript shows the loss), and two (loser, survivor) pairs of
    customers our tables hold, each with conversations of its own. Chosen in id order, not
    in the order the tables' files happen to be read."""
    conversations = latest_per_id(lake.table("conversations")).sort("id")
    deleted = conversations["id"].head(3).to_list()
    live = conversations.filter(~pl.col("id").is_in(deleted) & ~pl.col("deleted").fill_null(False))[
        "id"
    ]
    messages = latest_per_id(lake.table("messages")).filter(
        pl.col("conversation_id").is_in(live.implode())
    )
    message_ids = messages["id"].sort().head(4).to_list()
    customers = set(lake.table("customers")["id"])
    with_conversations = sorted(
        set(conversations.filter(~pl.col("id").is_in(deleted))["customer_id"]) & customers
    )
    a, b, c, d = with_conversations[:4]
    return deleted, message_ids, [(a, b), (c, d)]


@pytest.fixture
def backfilled(tmp_path, request):
    """An emulator after a DAYS-day backfill of the four searched tables, and a feedback build."""
    mode = request.param
    lake = Lake(tmp_path / "delta")
    with Emulator(emulator_config(days=DAYS, merged_lookup=mode, **LIMITS)) as server:
        first, last = day_range(DAYS + 1)
        res = resources(server.base_url, lake)
        materialize_range(RAW, first, last, res)
        assert build(lake)["mode"] == "full"
        yield server, lake, res, (first, last)


@pytest.mark.parametrize("backfilled", ["survivor"], indirect=True)
def test_removed_and_merged_records_are_marked_and_leave_feedback(backfilled) -> None:
    server, lake, res, (_, last) = backfilled
    deleted, message_ids, pairs = choose_removals(lake)
    ds = server.dataset
    saved = copy.deepcopy(ds.get("conversation", deleted[0]))
    ds.hard_delete("conversation", ids=deleted)
    ds.hard_delete("message", ids=message_ids)
    ds.merge_customers(pairs)
    # Kustomer's clock a little ahead of ours, and the org moving after every search page:
    # touched records leave the listed span, and the one behind a moved record is skipped.
    ds.advance(10)
    server.set_churn({"conversation": 2, "message": 1}, reset=True)
    metadata = reconcile(server, res)
    server.set_churn({})

    removed, merged = server.removed(), server.merged()
    assert merged == dict(pairs)
    assert marked(lake) == {
        "conversations": set(removed["conversation"]),
        "messages": set(removed["message"]),
        "customers": set(merged),
        "notes": set(),
    }
    assert survivors(lake) == merged
    found = metadata["reconciliation"]
    touched = server.churned("conversation") | server.churned("message")
    assert touched and not touched & set().union(*marked(lake).values())
    assert found["conversations"]["still_there"] >= 1, "touched conversations were asked about"
    assert found["messages"]["still_there"] >= 1, "touched or skipped messages were re-listed"
    assert found["conversations"]["looked_up_by_id"] == found["conversations"]["candidates"]
    assert metadata["conversations_removed"] == 3 and metadata["customers_merged"] == 2
    assert metadata["messages_removed"] == 4 and metadata["notes_removed"] == 0
    assert metadata["requests"] == formula(metadata) == metadata["requests_by_formula"]

    # feedback: removed conversations gone, the losers' conversations show their survivor
    assert build(lake)["mode"] == "incremental"
    rows = assert_incremental_equals_full(lake)
    assert not set(deleted) & set(rows["conversation_id"])
    conversations = latest_per_id(lake.table("conversations"))
    for loser, survivor in pairs:
        profile = ds.get("customer", survivor)["attributes"]
        theirs = conversations.filter(pl.col("customer_id") == loser)["id"].to_list()
        shown = rows.filter(pl.col("conversation_id").is_in(theirs))
        assert shown.height == len(theirs) > 0
        assert set(shown["customer_id"]) == {survivor}
        assert set(shown["customer_email"]) == {profile["emails"][0]["email"]}
        assert set(shown["customer_name"]) == {profile["name"]}
    live_messages = {m["id"] for m in server.truth("message")}
    messages = latest_per_id(lake.table("messages"))
    for conversation_id in set(messages.filter(pl.col("id").is_in(message_ids))["conversation_id"]):
        expected = messages.filter(
            (pl.col("conversation_id") == conversation_id) & pl.col("id").is_in(live_messages)
        )
        row = rows.filter(pl.col("conversation_id") == conversation_id)
        assert len(row["transcript"][0]) == expected.height

    # a record that reappears is un-marked, and feedback brings its conversation back
    first_marks = lake.table("removed_records")
    with ds.lock:
        ds.records["conversation"][saved["id"]] = saved
        ds.version += 1
    assert reconcile(server, res)["table_changed"] is True
    assert marked(lake)["conversations"] == set(deleted[1:])
    kept = lake.table("removed_records").join(first_marks, on=["entity", "id"])
    assert kept.height == first_marks.height - 1
    assert kept["removed_from_kustomer_at"].equals(kept["removed_from_kustomer_at_right"])
    build(lake)
    assert saved["id"] in set(assert_incremental_equals_full(lake)["conversation_id"])

    # Syncing today replaces today's partitions with what Kustomer returns, so records last
    # updated today and since removed leave our tables, and with them their removal rows.
    materialize_range(RAW, last, last, res)
    reconcile(server, res)
    ours = {e: set(lake.table(e)["id"]) for e in ("conversations", "messages", "customers")}
    for entity, ids in marked(lake).items():
        assert ids == {
            i for i in kept.filter(pl.col("entity") == entity)["id"] if i in ours.get(entity, ())
        }
    build(lake)
    assert_incremental_equals_full(lake)

    # Nothing removed since: the next run asks nothing by id, lists nothing twice, commits nothing.
    before = lake.table("removed_records").sort("entity", "id")
    again = reconcile(server, res)
    assert again["table_changed"] is False
    assert lake.table("removed_records").sort("entity", "id").equals(before)
    for entity in again["reconciliation"].values():
        assert entity["candidates"] == entity["looked_up_by_id"] == 0
        assert entity["relisting"] is None
    assert (
        again["requests"]
        == formula(again)
        == sum(
            e["listing"]["count_requests"]
            + sum(math.ceil(w["counted"] / PAGE_SIZE) for w in e["listing"]["windows"])
            for e in again["reconciliation"].values()
        )
    )


@pytest.mark.parametrize("backfilled", ["404"], indirect=True)
def test_a_merge_answered_with_404_is_told_by_the_customers_conversation(backfilled) -> None:
    server, lake, res, (first, last) = backfilled
    _, _, pairs = choose_removals(lake)
    server.dataset.merge_customers(pairs)
    metadata = reconcile(server, res)
    assert survivors(lake) == dict(pairs) == server.merged()
    customers = metadata["reconciliation"]["customers"]
    assert customers["looked_up_by_id"] == customers["candidates"] == 2
    assert customers["referrers_looked_up"] == 2, "one conversation each, after the 404"
    assert metadata["requests"] == formula(metadata)
    build(lake)
    rows = assert_incremental_equals_full(lake)
    conversations = latest_per_id(lake.table("conversations"))
    for loser, survivor in pairs:
        theirs = conversations.filter(pl.col("customer_id") == loser)["id"]
        shown = rows.filter(pl.col("conversation_id").is_in(theirs.to_list()))
        assert set(shown["customer_id"]) == {survivor}
        email = server.dataset.get("customer", survivor)["attributes"]["emails"][0]["email"]
        assert set(shown["customer_email"]) == {email}

    # Kustomer's re-pointed conversations arrive: feedback rows stay the same
    materialize_range(CONVERSATIONS_ONLY, first, last, res)
    again = reconcile(server, res)
    assert survivors(lake) == dict(pairs)
    assert again["reconciliation"]["customers"]["looked_up_by_id"] == 0
    build(lake)
    after = assert_incremental_equals_full(lake)
    columns = ["conversation_id", "customer_id", "customer_email", "customer_name"]
    assert after.select(columns).equals(rows.select(columns))


@pytest.mark.parametrize("backfilled", ["survivor"], indirect=True)
def test_too_many_missing_records_fail_instead_of_being_marked(backfilled) -> None:
    server, lake, res, _ = backfilled
    conversations = latest_per_id(lake.table("conversations"))["id"].to_list()
    server.dataset.hard_delete("conversation", ids=conversations[: len(conversations) // 3])
    result = dg.materialize([removed_records], resources=res, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("conversations: Kustomer no longer lists")
    assert "above the 20% bound" in message and "nothing was marked" in message
    assert not (lake.root / "removed_records").exists()
    # An operator who knows it was a real purge raises the bound.
    assert (
        reconcile(server, res, max_candidate_share=0.5)["conversations_removed"]
        == len(conversations) // 3
    )


class _Window:
    """A search window over a fixed set of (id, updatedAt), as `list_ids` uses it."""

    def __init__(self, records: list[tuple[str, datetime]], lo: datetime, hi: datetime) -> None:
        self.ids = [rid for rid, at in records if lo <= at < hi]

    def count(self) -> int:
        return len(self.ids)

    def list_ids(self) -> list[str]:
        assert len(self.ids) <= removals.WINDOW_MAX_RECORDS, "would meet the deep-paging wall"
        return self.ids


class _Org:
    def __init__(self, records: list[tuple[str, datetime]]) -> None:
        self.records = records

    def search_window(self, context: str, lo: datetime, hi: datetime, *, role: str) -> _Window:
        return _Window(self.records, lo, hi)


def test_listing_windows_stay_below_the_deep_paging_wall() -> None:
    """Kustomer holds far more customers in the span than our table (which only has those our
    conversations point at): windows cut at our records are split again by Kustomer's counts."""
    now = datetime(2026, 11, 30, tzinfo=UTC)
    org = [(f"c{i:06d}", now - timedelta(minutes=7 * i)) for i in range(45_000)]
    ours = pl.Series([at for _, at in org[::50]], dtype=pl.Datetime("us", "UTC"))
    start = min(at for _, at in org)
    listing = removals.list_ids(_Org(org), CUSTOMERS, [(start, now + timedelta(seconds=1))], ours)
    assert listing.ids == {rid for rid, _ in org}
    assert all(w.counted is not None and w.counted <= 10_000 for w in listing.windows)
    assert listing.counts > len(listing.windows) > 45_000 // 10_000
    assert listing.expected_requests(PAGE_SIZE) < 45_000 / PAGE_SIZE * 1.25
