"""Schema drift end to end: records patched on the emulator the way real orgs drift, then real
backfills. No run fails, no value is lost: a value that does not fit its column is kept as
sent in `unparsed_values`, colliding custom keys get two columns, an unknown attribute lands
in `extra_attributes`, the run's metadata counts and names what happened, and every other
column equals the server's truth.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from kustomer_assets.assets.raw import build_entity_asset
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import CONVERSATIONS, CUSTOMERS
from kustomer_assets.records import (
    EXTRA_ATTRIBUTES_COLUMN,
    PARTITION_COLUMN,
    UNPARSED_COLUMN,
    custom_column_name,
)
from kustomer_assets_tests.conftest import (
    Lake,
    assert_matches_truth,
    day_range,
    emulator_config,
    materialize_range,
    resources,
    run_metadata,
)
from kustomer_assets_tests.reliability.truth import assert_rows_equal, updated_at
from kustomer_assets_tests.test_end_to_end import expected_table

ASSETS = [build_entity_asset(spec) for spec in (CONVERSATIONS, CUSTOMERS)]

VIP_BOOL, VIP_SNAKE = custom_column_name("vipBool"), custom_column_name("vip_bool")


def _live_ids(emulator: Emulator, kustomer_type: str, n: int) -> list[str]:
    """The first n live records by id: deterministic for a seeded emulator."""
    live = [r for r in emulator.truth(kustomer_type, include_deleted=False)]
    return [r["id"] for r in live[:n]]


def _latest(table: pl.DataFrame, rid: str) -> dict[str, Any]:
    rows = table.filter(pl.col("id") == rid).sort("updated_at")
    assert rows.height, f"{rid} not in the table"
    return rows.row(-1, named=True)


def _unparsed(row: dict[str, Any]) -> dict[str, Any]:
    text = row[UNPARSED_COLUMN]
    return json.loads(text) if text else {}


def _unparsed_rows(table: pl.DataFrame, first: date, last: date) -> int:
    days = table.filter(pl.col(PARTITION_COLUMN).is_between(first, last))
    return days.height - days[UNPARSED_COLUMN].null_count()


def test_drift_before_a_backfill_is_kept_reported_and_the_rest_equals_truth(lake: Lake) -> None:
    """Patched values land in the second window of the range (patches stamp "now"), so the
    first window creates the table and the second adds the drifted columns to it."""
    with Emulator(emulator_config(days=10, scale=0.5)) as server:
        c = _live_ids(server, "conversation", 5)
        patches: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
            # (type, id, custom, attributes)
            ("conversation", c[0], {"refundAmountNum": "N/A", "shippedAt": "soon"}, {}),
            ("conversation", c[1], {"refundAmountNum": "3,50"}, {}),
            ("conversation", c[2], {"vipBool": True, "vip_bool": "platinum"}, {}),
            (
                "conversation",
                c[3],
                {},
                {"priority": [1, 2], "status": None, "sentimentV2": {"label": "neg"}},
            ),
            ("conversation", c[4], {"vipBool": "yes please"}, {"priority": "high"}),
        ]
        customer = _live_ids(server, "customer", 1)[0]
        patches.append(
            ("customer", customer, {"newsletterBool": "maybe", "vip_bool": "gold"}, {"tier": 2})
        )
        for kind, rid, custom, attributes in patches:
            assert server.dataset.patch(kind, ids=[rid], custom=custom, attributes=attributes)
        first, last = day_range(9)
        result = materialize_range(ASSETS, first, last, resources(server.base_url, lake))
        assert result.success
        conversations, customers = lake.table("conversations"), lake.table("customers")
        assert_matches_truth(conversations, expected_table(server, CONVERSATIONS, first, last))
        assert_matches_truth(customers, expected_table(server, CUSTOMERS, first, last))

    # Values that do not fit: kept exactly as sent, typed column null.
    row = _latest(conversations, c[0])
    assert _unparsed(row) == {"custom.refundAmountNum": "N/A", "custom.shippedAt": "soon"}
    assert row["custom_refund_amount_num"] is None and row["custom_shipped_at"] is None
    row = _latest(conversations, c[1])
    assert _unparsed(row) == {"custom.refundAmountNum": "3,50"}
    assert row["custom_refund_amount_num"] is None
    row = _latest(conversations, c[3])
    assert _unparsed(row) == {"priority": [1, 2]}
    assert row["priority"] is None and row["status"] is None
    assert json.loads(row[EXTRA_ATTRIBUTES_COLUMN])["sentimentV2"] == {"label": "neg"}
    row = _latest(conversations, c[4])
    assert _unparsed(row) == {"custom.vipBool": "yes please", "priority": "high"}
    # Two keys that snake-case alike: two columns, each with its own value.
    assert VIP_BOOL != VIP_SNAKE
    row = _latest(conversations, c[2])
    assert (row[VIP_BOOL], row[VIP_SNAKE]) == (True, "platinum") and row[UNPARSED_COLUMN] is None
    assert conversations.schema[VIP_BOOL] == pl.Boolean
    assert conversations.schema[VIP_SNAKE] == pl.Utf8
    row = _latest(customers, customer)
    assert _unparsed(row) == {"custom.newsletterBool": "maybe"}
    assert row[VIP_SNAKE] == "gold" and json.loads(row[EXTRA_ATTRIBUTES_COLUMN])["tier"] == 2
    # Untouched records carry nothing in either catch-all column they did not carry before.
    untouched = conversations.filter(~pl.col("id").is_in(c))
    assert untouched[UNPARSED_COLUMN].null_count() == untouched.height

    metadata = run_metadata(result, "conversations")
    assert metadata["rows_with_unparsed_values"] == 4
    assert metadata["windows"] == 2
    changes = metadata["schema_changes"]
    for column in ("custom_shipped_at", VIP_SNAKE):
        assert any(change.startswith(f"{column}: new column") for change in changes), changes
    assert run_metadata(result, "customers")["rows_with_unparsed_values"] == 1


def test_a_custom_value_that_changes_type_between_days(lake: Lake) -> None:
    """One set of conversations patched on three consecutive days (the emulator's clock is
    moved a day between patches), each day backfilled on its own: a number, then text, then a
    list in `scoreNum`; a suffix-less `tierLevel` that first appears on day two. Every version
    stays in its own day, typed where it fits and kept as sent where it does not."""
    now = datetime.now(UTC) - timedelta(days=3)
    with Emulator(emulator_config(days=8, scale=0.5, now=now)) as server:
        targets = _live_ids(server, "conversation", 3)
        steps: list[tuple[dict[str, Any], dict[str, Any]]] = [
            ({"scoreNum": 4.5}, {}),
            ({"scoreNum": "high", "tierLevel": 3}, {}),
            ({"scoreNum": [1, 2], "tierLevel": ["a", "b"]}, {"priority": "urgent"}),
        ]
        versions: list[dict[str, dict]] = []
        results = []
        for number, (custom, attributes) in enumerate(steps):
            if number:
                server.dataset.advance(24 * 3600)
            server.dataset.patch("conversation", ids=targets, custom=custom, attributes=attributes)
            truth = {r["id"]: r for r in server.truth("conversation") if r["id"] in targets}
            days = {updated_at(r).date() for r in truth.values()}
            assert len(days) == 1, days
            (day,) = days
            first = day - timedelta(days=3) if number == 0 else day
            result = materialize_range(
                ASSETS[:1], first.isoformat(), day.isoformat(), resources(server.base_url, lake)
            )
            assert result.success
            versions.append(truth)
            results.append((first, day, run_metadata(result, "conversations")))
        table = lake.table("conversations")
        window = (results[0][0].isoformat(), results[-1][1].isoformat())
        assert_matches_truth(table, expected_table(server, CONVERSATIONS, *window))

    # Every version of every target is in the table, equal to the record as it was that day.
    for truth in versions:
        assert_rows_equal(table, CONVERSATIONS, truth.values())
    assert table.schema["custom_score_num"] == pl.Float64
    assert table.schema["custom_tier_level"] == pl.Utf8
    expected_by_day = [
        (4.5, None, {}),
        (None, "3", {"custom.scoreNum": "high"}),
        (None, '["a", "b"]', {"custom.scoreNum": [1, 2], "priority": "urgent"}),
    ]
    for (_, day, _), (score, tier, unparsed) in zip(results, expected_by_day, strict=True):
        rows = table.filter(pl.col("id").is_in(targets) & (pl.col(PARTITION_COLUMN) == day))
        assert rows.height == len(targets)
        for row in rows.iter_rows(named=True):
            assert (row["custom_score_num"], row["custom_tier_level"]) == (score, tier)
            assert _unparsed(row) == unparsed
    # The metadata counts the rows that kept a value, and names the column the drift added.
    (first0, day0, meta0), (_, _, meta1), (_, _, meta2) = results
    assert meta0["rows_with_unparsed_values"] == _unparsed_rows(table, first0, day0) == 0
    assert meta1["rows_with_unparsed_values"] == meta2["rows_with_unparsed_values"] == 3
    assert meta0["schema_changes"] == []
    assert any(c.startswith("custom_tier_level: new column") for c in meta1["schema_changes"])
    assert meta2["schema_changes"] == []
