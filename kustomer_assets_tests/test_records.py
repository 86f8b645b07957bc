"""Record -> row mapping: types at the boundary, custom attributes by suffix, nothing lost."""

import json
import re
from datetime import UTC, date, datetime

import polars as pl

from kustomer_assets.entities import CONVERSATIONS, CUSTOMERS, ENTITIES
from kustomer_assets.records import (
    TIMESTAMP,
    UNPARSED_COLUMN,
    custom_column_name,
    custom_dtype,
    parse_timestamp,
    rows_with_unparsed_values,
    snake_case,
    unparsed_counts,
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


def test_custom_attributes_become_typed_columns_and_bad_values_are_kept_as_sent() -> None:
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
    assert frame.schema[UNPARSED_COLUMN] == pl.Utf8
    first, second = frame.rows(named=True)
    assert first["custom_refund_amount_num"] == 12.5
    assert first["custom_notes_txt"] == "café ☕"
    assert first["custom_score_num"] is None
    assert json.loads(first[UNPARSED_COLUMN]) == {"custom.scoreNum": "n/a"}
    assert second["custom_order_id_str"] is None
    assert second[UNPARSED_COLUMN] is None


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
    base = {"id", "updated_at", "partition_date", "extra_attributes", "unparsed_values"}
    assert base <= set(frame.columns)


# --- no value dropped --------------------------------------------------------------------------


def unparsed(frame: pl.DataFrame, row: int = 0) -> dict:
    text = frame[UNPARSED_COLUMN][row]
    return {} if text is None else json.loads(text)


def test_unparsed_column_is_in_every_mapper_schema_with_a_description() -> None:
    for spec in ENTITIES:
        assert spec.mapper.base_schema[UNPARSED_COLUMN] == pl.Utf8, spec.name
        assert "as sent" in spec.mapper.descriptions[UNPARSED_COLUMN]
        assert spec.mapper.frame([]).schema[UNPARSED_COLUMN] == pl.Utf8


def test_values_that_do_not_fit_their_type_are_kept_not_nulled() -> None:
    custom = {
        "refundAmountNum": "N/A",
        "discountNum": "3,50",
        "shippedAt": "soon",
        "vipBool": "maybe",
        "sizesNum": [1, 2],
        "boxAt": {"when": "later"},
    }
    frame = CONVERSATIONS.mapper.frame([conversation(custom=custom, priority="high")])
    row = frame.row(0, named=True)
    for column in (
        "custom_refund_amount_num",
        "custom_discount_num",
        "custom_shipped_at",
        "custom_vip_bool",
        "custom_sizes_num",
        "custom_box_at",
        "priority",
    ):
        assert row[column] is None, column
    assert unparsed(frame) == {
        "custom.refundAmountNum": "N/A",
        "custom.discountNum": "3,50",
        "custom.shippedAt": "soon",
        "custom.vipBool": "maybe",
        "custom.sizesNum": [1, 2],
        "custom.boxAt": {"when": "later"},
        "priority": "high",
    }
    assert unparsed_counts(frame)["priority"] == 1
    assert rows_with_unparsed_values(frame) == 1


def test_numbers_parse_strictly_and_never_lose_digits() -> None:
    custom = {
        "aNum": "12.5",
        "bNum": " 7 ",
        "cNum": "1e3",
        "dNum": "3,50",  # decimal comma or thousands separator: not guessed
        "eNum": "1_000",
        "fNum": "nan",
        "gNum": True,  # a boolean is not a number
        "hNum": 4,
    }
    frame = CONVERSATIONS.mapper.frame(
        [conversation(custom=custom, messageCount="12", noteCount=5.5, reopenCount="2.0")]
    )
    row = frame.row(0, named=True)
    assert row["custom_a_num"] == 12.5
    assert row["custom_b_num"] == 7.0
    assert row["custom_c_num"] == 1000.0
    assert row["custom_h_num"] == 4.0
    assert row["message_count"] == 12
    assert row["reopen_count"] == 2
    assert row["note_count"] is None  # 5.5 is never truncated to 5
    assert unparsed(frame) == {
        "custom.dNum": "3,50",
        "custom.eNum": "1_000",
        "custom.fNum": "nan",
        "custom.gNum": True,
        "noteCount": 5.5,
    }


def test_booleans_and_timestamps_parse_strictly() -> None:
    custom = {"aBool": "Yes", "bBool": 0, "cBool": 5, "whenAt": 10**30, "thenAt": ""}
    frame = CONVERSATIONS.mapper.frame([conversation(custom=custom, ended="no")])
    row = frame.row(0, named=True)
    assert row["custom_a_bool"] is True
    assert row["custom_b_bool"] is False
    assert row["custom_c_bool"] is None
    assert row["ended"] is False
    assert row["custom_when_at"] is None
    assert row["custom_then_at"] is None  # blank is no value, not an unparsed one
    assert unparsed(frame) == {"custom.cBool": 5, "custom.whenAt": 10**30}


def test_null_is_not_unparsed_and_text_columns_take_anything() -> None:
    custom = {"aNum": None, "labelStr": 12, "tagsStr": ["x", "y"], "infoTxt": {"k": 1}}
    frame = CONVERSATIONS.mapper.frame([conversation(custom=custom, priority=None)])
    row = frame.row(0, named=True)
    assert row[UNPARSED_COLUMN] is None
    assert row["custom_label_str"] == "12"
    assert json.loads(row["custom_tags_str"]) == ["x", "y"]
    assert json.loads(row["custom_info_txt"]) == {"k": 1}


def test_a_nested_attribute_of_the_wrong_shape_is_kept() -> None:
    frame = CONVERSATIONS.mapper.frame(
        [conversation(firstResponse="fast", satisfactionLevel=[5], custom="oops")]
    )
    row = frame.row(0, named=True)
    assert row["first_response_time"] is None and row["satisfaction_rating"] is None
    assert unparsed(frame) == {
        "firstResponse": "fast",
        "satisfactionLevel": [5],
        "custom": "oops",
    }


def test_a_relationship_of_the_wrong_shape_is_kept() -> None:
    resource = conversation()
    resource["relationships"]["customer"] = {"data": [{"id": "c1"}, {"id": "c2"}]}
    frame = CONVERSATIONS.mapper.frame([resource])
    assert frame["customer_id"][0] is None
    assert unparsed(frame) == {"relationships.customer.data": [{"id": "c1"}, {"id": "c2"}]}


def test_list_items_of_the_wrong_shape_are_kept() -> None:
    resource = {
        "type": "customer",
        "id": "d" * 24,
        "attributes": {
            "updatedAt": "2026-11-20T00:00:00.000Z",
            "emails": [{"email": "ana@example.com"}, "b@example.com"],
        },
    }
    frame = CUSTOMERS.mapper.frame([resource])
    assert frame["emails"].to_list() == [["ana@example.com"]]
    assert unparsed(frame) == {"emails": [{"email": "ana@example.com"}, "b@example.com"]}


def test_well_formed_records_have_no_unparsed_values() -> None:
    frame = CONVERSATIONS.mapper.frame([conversation(custom={"orderIdStr": "A"})])
    assert frame[UNPARSED_COLUMN].to_list() == [None]


# --- colliding column names --------------------------------------------------------------------


def test_canonical_keys_keep_their_names() -> None:
    assert custom_column_name("orderIdStr") == "custom_order_id_str"
    assert custom_column_name("refundAmountNum") == "custom_refund_amount_num"
    assert custom_column_name("address2Str") == "custom_address2_str"
    assert custom_column_name("weirdName") == "custom_weird_name"


def test_keys_that_snake_case_alike_get_distinct_stable_names() -> None:
    keys = ["vipBool", "vip_bool", "VipBool", "vip bool", "vip__bool", "vipBOOL", "vip-bool"]
    names = [custom_column_name(k) for k in keys]
    assert len(set(names)) == len(keys)
    assert names[0] == "custom_vip_bool"
    assert re.fullmatch(r"custom_vip_bool__[0-9a-f]{10}", names[1])
    # The same key gets the same column whatever else the batch holds, in any order.
    alone = CONVERSATIONS.mapper.frame([conversation(custom={"vip_bool": "a"})])
    crowded = CONVERSATIONS.mapper.frame(
        [conversation(custom={k: "a" for k in reversed(keys)}), conversation(custom={})]
    )
    assert names[1] in alone.columns and alone[names[1]].to_list() == ["a"]
    assert crowded[names[1]].to_list() == ["a", None]


def test_hashed_names_cannot_meet_canonical_ones() -> None:
    # Canonical names never hold "__"; every other key's name ends in "__" + 10 hex digits.
    for key in ["orderIdStr", "aB1Cd", "x", "abc2Def3", "vipBool3fa9b01c2d"]:
        assert "__" not in custom_column_name(key)
    for key in ["vip_bool", "URL", "a b", "", "_x", "xY_", "prénomStr", "aBC"]:
        assert re.fullmatch(r"custom_[a-z0-9_]*__[0-9a-f]{10}", custom_column_name(key)), key


def test_many_generated_keys_never_collide() -> None:
    words = ["vip", "Vip", "VIP", "_", " ", "-", "bool", "Bool", "BOOL", "2", "é", ""]
    keys = {a + b + c for a in words for b in words for c in words}
    names = {custom_column_name(k) for k in keys}
    assert len(names) == len(keys)


def test_colliding_keys_in_one_batch_keep_both_values() -> None:
    frame = CONVERSATIONS.mapper.frame(
        [conversation(custom={"vipBool": True, "vip_bool": "gold", "vip_Bool": "yes"})]
    )
    row = frame.row(0, named=True)
    assert row["custom_vip_bool"] is True
    assert row[custom_column_name("vip_bool")] == "gold"
    assert frame.schema[custom_column_name("vip_bool")] == pl.Utf8  # lower-case: no suffix
    assert row[custom_column_name("vip_Bool")] is True
    assert frame.schema[custom_column_name("vip_Bool")] == pl.Boolean


def test_urlpath_keeps_its_snake_prefix() -> None:
    assert custom_column_name("URLPathStr").startswith("custom_url_path_str__")
