"""Record -> row mapping: types at the boundary, custom attributes by suffix, nothing lost."""

import json
from datetime import UTC, date, datetime

import polars as pl

from kustomer_assets.entities import CONVERSATIONS, CUSTOMERS
from kustomer_assets.records import (
    TIMESTAMP,
    custom_column_name,
    custom_dtype,
    parse_timestamp,
    snake_case,
)


def conversation(**attributes: object) -> dict:
    base = {
        "updatedAt": "2026-11-20T16:34:00.123Z",
        "createdAt": "2026-11-19T08:00:00.000Z",
        "status": "open",
        "channels": ["email", "chat"],
        "messageCount": 4,
        "assignedUsers": ["5f1e00000000000000000001"],
        "firstResponse": {"createdAt": "2026-11-19T09:00:00.000Z", "time": 3600000},
        "satisfactionLevel": {"score": 1, "rating": 5, "formResponse": "ab" * 12},
    }
    base.update(attributes)
    return {
        "type": "conversation",
        "id": "5f1e0000000000000000abcd",
        "attributes": base,
        "relationships": {"customer": {"data": {"type": "customer", "id": "c" * 24}}},
    }


def test_snake_case_and_custom_names_keep_the_suffix() -> None:
    assert snake_case("contactReasonTree") == "contact_reason_tree"
    assert snake_case("URLPathStr") == "url_path_str"
    assert custom_column_name("vipBool") == "custom_vip_bool"
    assert custom_column_name("vipStr") != custom_column_name("vipBool")


def test_custom_suffix_types() -> None:
    assert custom_dtype("refundAmountNum") == pl.Float64
    assert custom_dtype("vipBool") == pl.Boolean
    assert custom_dtype("purchasedAt") == TIMESTAMP
    assert custom_dtype("contactReasonTree") == pl.Utf8
    assert custom_dtype("weirdName") == pl.Utf8
    assert custom_dtype("At") == pl.Utf8  # a bare suffix is not a typed name


def test_timestamps_parse_iso_offsets_and_epochs() -> None:
    expected = datetime(2026, 11, 20, 16, 34, 0, 123000, tzinfo=UTC)
    assert parse_timestamp("2026-11-20T16:34:00.123Z") == expected
    assert parse_timestamp("2026-11-20T17:34:00.123+01:00") == expected
    assert parse_timestamp(int(expected.timestamp() * 1000)) == expected
    assert parse_timestamp("not a date") is None
    assert parse_timestamp(None) is None


def test_conversation_row_is_typed_and_flattened() -> None:
    frame = CONVERSATIONS.mapper.frame([conversation()])
    row = frame.row(0, named=True)
    assert frame.schema["updated_at"] == TIMESTAMP
    assert row["updated_at"] == datetime(2026, 11, 20, 16, 34, 0, 123000, tzinfo=UTC)
    assert row["partition_date"] == date(2026, 11, 20)
    assert row["channels"] == ["email", "chat"]
    assert row["message_count"] == 4
    assert row["first_response_time"] == 3600000
    assert row["satisfaction_rating"] == 5.0
    assert row["customer_id"] == "c" * 24
    assert row["assigned_user_ids"] == ["5f1e00000000000000000001"]


def test_custom_attributes_become_typed_columns_and_bad_values_become_null() -> None:
    custom = {
        "orderIdStr": "A-1",
        "refundAmountNum": "12.5",
        "vipBool": True,
        "purchasedAt": "2026-11-01T00:00:00.000Z",
        "notesTxt": "café ☕",
        "scoreNum": "n/a",
    }
    frame = CONVERSATIONS.mapper.frame([conversation(custom=custom), conversation(custom=None)])
    assert frame.schema["custom_refund_amount_num"] == pl.Float64
    assert frame.schema["custom_vip_bool"] == pl.Boolean
    assert frame.schema["custom_purchased_at"] == TIMESTAMP
    first, second = frame.rows(named=True)
    assert first["custom_refund_amount_num"] == 12.5
    assert first["custom_notes_txt"] == "café ☕"
    assert first["custom_score_num"] is None
    assert second["custom_order_id_str"] is None


def test_unmapped_attributes_are_kept_as_json_not_dropped() -> None:
    frame = CONVERSATIONS.mapper.frame([conversation(brandNewField={"a": 1})])
    assert json.loads(frame["extra_attributes"][0]) == {"brandNewField": {"a": 1}}


def test_customer_emails_from_objects() -> None:
    resource = {
        "type": "customer",
        "id": "d" * 24,
        "attributes": {
            "updatedAt": "2026-11-20T00:00:00.000Z",
            "emails": [{"type": "home", "email": "ana@example.com"}, {"email": "b@example.com"}],
        },
    }
    row = CUSTOMERS.mapper.frame([resource]).row(0, named=True)
    assert row["emails"] == ["ana@example.com", "b@example.com"]
    assert row["tag_ids"] is None


def test_empty_batch_has_the_base_schema() -> None:
    frame = CONVERSATIONS.mapper.frame([])
    assert frame.is_empty()
    assert {"id", "updated_at", "partition_date", "extra_attributes"} <= set(frame.columns)
