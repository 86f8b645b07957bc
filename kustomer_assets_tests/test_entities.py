"""Every entity against the emulator: tables equal the server's records, roles and toggles."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.emulator import Emulator
from kustomer_assets.emulator.dataset import LATE_CUSTOM_ATTRIBUTE
from kustomer_assets.entities import ENTITIES, ENTITIES_BY_NAME
from kustomer_assets.kustomer import roles
from kustomer_assets.records import custom_column_name, parse_timestamp
from kustomer_assets_tests.conftest import (
    TEST_KEY,
    Lake,
    assert_matches_truth,
    day_range,
    emulator_config,
    expected_records,
    materialize_range,
    resources,
    run_metadata,
)

REQUIRED_ONLY = frozenset(
    {
        roles.CONVERSATION_READ,
        roles.MESSAGE_READ,
        roles.TAG_READ,
        roles.METADATA_READ,
        roles.SEARCH_CREATE,
    }
)


def metadata_of(result: dg.ExecuteInProcessResult, name: str) -> dict:
    return run_metadata(result, name)


@pytest.fixture(scope="module")
def full_backfill(tmp_path_factory: pytest.TempPathFactory):
    lake = Lake(tmp_path_factory.mktemp("lake") / "delta")
    with Emulator(emulator_config(days=12)) as server:
        first, last = day_range(12)
        result = materialize_range(entity_assets, first, last, resources(server.base_url, lake))
        yield server, lake, result, first, last


@pytest.mark.parametrize("name", [spec.name for spec in ENTITIES])
def test_every_entity_matches_the_server(full_backfill, name: str) -> None:
    server, lake, result, first, last = full_backfill
    assert result.success
    spec = ENTITIES_BY_NAME[name]
    expected = expected_records(server, spec, first, last)
    assert expected, f"emulator should serve {name}"
    table = lake.table(name)
    assert_matches_truth(table, spec.mapper.frame(expected))
    metadata = metadata_of(result, name)
    # Rows for days outside a window (referenced records) are merged in and counted apart; a
    # later window of the same run may rewrite their day, so the two may overlap.
    rows, outside = metadata["rows_written"], metadata["rows_outside_window"]
    assert rows <= table.height <= rows + outside


def test_messages_carry_text_and_links(full_backfill) -> None:
    _, lake, *_ = full_backfill
    messages = lake.table("messages")
    assert messages["preview_text"].str.len_chars().min() > 0
    assert set(messages["direction"].unique()) == {"in", "out"}
    conversations = set(lake.table("conversations")["id"])
    linked = messages.filter(pl.col("conversation_id").is_in(list(conversations)))
    assert linked.height > 0.5 * messages.height
    assert messages.filter(pl.col("direction") == "out")["sent_by_user_id"].null_count() == 0


def test_csat_keeps_comments_and_who_it_was_sent_for(full_backfill) -> None:
    _, lake, *_ = full_backfill
    csat = lake.table("satisfaction")
    assert csat.height > 0
    assert csat["comment"].drop_nulls().len() > 0
    assert csat["rating"].null_count() == 0
    assert csat["conversation_id"].null_count() == 0
    assert csat["sent_for_team_id"].null_count() == 0


def test_custom_attribute_appearing_mid_history_is_a_typed_column(full_backfill) -> None:
    _, lake, *_ = full_backfill
    column = custom_column_name(LATE_CUSTOM_ATTRIBUTE)
    conversations = lake.table("conversations").sort("updated_at")
    assert conversations.schema[column] == pl.Utf8
    with_value = conversations.filter(pl.col(column).is_not_null())
    assert with_value.height > 0
    first_seen = with_value["updated_at"].min()
    earlier = conversations.filter(pl.col("updated_at") < first_seen)
    assert earlier.height > 0 and earlier[column].null_count() == earlier.height
    definitions = lake.table("custom_attributes")
    assert column in set(definitions["column_name"])


def test_required_roles_only_skips_optional_entities_with_named_roles(lake: Lake) -> None:
    with (
        Emulator(emulator_config(api_keys={TEST_KEY: REQUIRED_ONLY})) as server,
        dg.instance_for_test() as instance,
    ):
        first, last = day_range(3)
        result = materialize_range(
            entity_assets, first, last, resources(server.base_url, lake), instance=instance
        )
        warnings = "\n".join(
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if entry.level == logging.WARNING
        )
    assert result.success
    for spec in ENTITIES:
        metadata = metadata_of(result, spec.name)
        if spec.required:
            assert not metadata.get("skipped"), spec.name
        else:
            assert metadata["skipped"] is True, spec.name
            assert metadata["missing_role"] == spec.role
            assert metadata["dagster/row_count"] == 0
            assert f"{spec.name} skipped" in warnings and spec.role in warnings
    assert lake.table("messages").height > 0


def test_message_toggle_turns_ingestion_off(emulator: Emulator, lake: Lake) -> None:
    first, last = day_range(2)
    asset = next(a for a in entity_assets if a.key.to_user_string() == "messages")
    before = emulator.stats.get("search.message", 0)
    result = materialize_range(
        [asset], first, last, resources(emulator.base_url, lake, switched_off=["messages"])
    )
    metadata = metadata_of(result, "messages")
    assert metadata["skipped"] is True and "KUSTOMER_INGEST_MESSAGES" in metadata["reason"]
    assert emulator.stats.get("search.message", 0) == before
    assert not (lake.root / "messages").exists()


def test_snapshot_tables_hold_every_record_whatever_the_window(emulator: Emulator, lake: Lake):
    first, last = day_range(1)
    users = next(a for a in entity_assets if a.key.to_user_string() == "users")
    materialize_range([users], first, last, resources(emulator.base_url, lake))
    table = lake.table("users")
    assert table.height == len(emulator.truth("user"))
    stamps = [parse_timestamp(r["attributes"]["updatedAt"]) for r in emulator.truth("user")]
    assert table["updated_at"].min() == min(stamps)


def test_csat_answered_before_a_later_loaded_conversation_day_is_not_missed(lake: Lake) -> None:
    """A conversation rated on D1 and touched again on D2 sits in D2's partition: when D1 is
    loaded before D2, D1's CSAT run cannot see it and D2's run must fetch the response."""
    chosen = [
        a for a in entity_assets if a.key.to_user_string() in {"conversations", "satisfaction"}
    ]
    with Emulator(emulator_config(days=10)) as server:
        first, last = day_range(11)
        middle = (datetime.fromisoformat(first) + timedelta(days=5)).date().isoformat()
        after = (datetime.fromisoformat(middle) + timedelta(days=1)).date().isoformat()
        res = resources(server.base_url, lake)
        materialize_range(chosen, first, middle, res)
        materialize_range(chosen, after, last, res)
        wanted = {
            c["attributes"]["satisfactionLevel"]["formResponse"]
            for c in server.truth("conversation")
            if (c["attributes"].get("satisfactionLevel") or {}).get("formResponse")
        }
        stored = set(lake.table("satisfaction")["id"])
        assert wanted - stored == set()
