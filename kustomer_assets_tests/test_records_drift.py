"""Custom attributes whose values change shape between batches and days: mapped by the real
mapper, written by the real lake writer; no write fails and no value is lost."""

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from kustomer_assets.entities import CONVERSATIONS
from kustomer_assets.lake import DeltaStore
from kustomer_assets.records import UNPARSED_COLUMN, custom_column_name

MAPPER = CONVERSATIONS.mapper


def record(n: int, day: int, **custom: Any) -> dict:
    updated = datetime(2026, 11, day, 12, tzinfo=UTC) + timedelta(minutes=n)
    return {
        "type": "conversation",
        "id": f"{n:024x}",
        "attributes": {
            "updatedAt": updated.isoformat().replace("+00:00", "Z"),
            "status": "open",
            "custom": custom,
        },
    }


def load_day(store: DeltaStore, day: int, *batches: list[dict]):
    first = date(2026, 11, day)
    with store.replace_days(
        "conversations", first, first + timedelta(days=1), MAPPER.base_schema
    ) as r:
        for batch in batches:
            r.add(MAPPER.frame(batch))
        return r.commit()


def kept(table: pl.DataFrame, key: str) -> dict[str, Any]:
    """id -> the value of custom attribute `key`, typed or as kept in unparsed_values."""
    column = custom_column_name(key)
    out: dict[str, Any] = {}
    for row in table.sort("id").iter_rows(named=True):
        unparsed = json.loads(row[UNPARSED_COLUMN]) if row[UNPARSED_COLUMN] else {}
        typed = row.get(column)
        if f"custom.{key}" in unparsed:
            assert typed is None
            out[row["id"]] = unparsed[f"custom.{key}"]
        else:
            out[row["id"]] = typed
    return out


def test_a_number_attribute_that_turns_into_text_and_lists(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    load_day(store, 1, [record(1, 1, scoreNum=1)], [record(2, 1, scoreNum=None)])
    load_day(store, 2, [record(3, 2, scoreNum="high")], [record(4, 2, scoreNum=[1, 2])])
    load_day(store, 3, [record(5, 3, scoreNum="2.5")], [record(6, 3)])
    table = store.scan("conversations").collect()
    assert table.schema["custom_score_num"] == pl.Float64
    assert kept(table, "scoreNum") == {
        f"{1:024x}": 1.0,
        f"{2:024x}": None,
        f"{3:024x}": "high",
        f"{4:024x}": [1, 2],
        f"{5:024x}": 2.5,
        f"{6:024x}": None,
    }


def test_a_null_only_batch_and_a_bool_that_turns_into_text(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    load_day(store, 1, [record(1, 1, vipBool=None)], [record(2, 1, vipBool=True)])
    load_day(store, 2, [record(3, 2, vipBool="gold")], [record(4, 2, vipBool=None)])
    table = store.scan("conversations").collect()
    assert table.schema["custom_vip_bool"] == pl.Boolean
    assert kept(table, "vipBool") == {
        f"{1:024x}": None,
        f"{2:024x}": True,
        f"{3:024x}": "gold",
        f"{4:024x}": None,
    }


def test_unknown_and_colliding_attributes_appear_without_failing(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    load_day(store, 1, [record(1, 1, vipBool=True)])
    summary = load_day(
        store,
        2,
        [record(2, 2, vip_bool="platinum", brandNewThing={"nested": [1]})],
        [record(3, 2, vipBool=False, vip_bool=None)],
    )
    table = store.scan("conversations").collect().sort("id")
    assert kept(table, "vipBool") == {f"{1:024x}": True, f"{2:024x}": None, f"{3:024x}": False}
    assert kept(table, "vip_bool") == {
        f"{1:024x}": None,
        f"{2:024x}": "platinum",
        f"{3:024x}": None,
    }
    assert json.loads(table[custom_column_name("brandNewThing")][1]) == {"nested": [1]}
    assert any(custom_column_name("vip_bool") in change for change in summary.schema_changes)


def test_an_older_table_with_other_types_still_takes_mapped_batches(tmp_path: Path) -> None:
    """A table an older version wrote: `custom_score_num` as Int64, `priority` as text, and
    `custom_note_str` as a Null column. Today's mapper types them Float64, Int64 and Utf8."""
    store = DeltaStore(str(tmp_path))
    old = MAPPER.frame([record(1, 1)]).with_columns(
        pl.lit(7, dtype=pl.Int64).alias("custom_score_num"),
        pl.lit("3", dtype=pl.Utf8).alias("priority"),
        pl.lit(None, dtype=pl.Null).alias("custom_note_str"),
    )
    old_schema = {**MAPPER.base_schema, "priority": pl.Utf8}
    with store.replace_days("conversations", date(2026, 11, 1), date(2026, 11, 2), old_schema) as r:
        r.add(old)
        r.commit()
    third = record(3, 2, scoreNum=4)
    third["attributes"]["priority"] = 5
    new = [record(2, 2, scoreNum=2.5, noteStr="hello"), third]
    summary = load_day(store, 2, new)
    table = store.scan("conversations").collect().sort("id")
    assert table.schema["custom_score_num"] == pl.Int64
    assert table.schema["custom_note_str"] == pl.Utf8
    assert table["custom_score_num"].to_list() == [7, None, 4]
    assert table["custom_score_num__float64"].to_list() == [None, 2.5, None]
    assert table["priority"].to_list() == ["3", None, "5"]
    assert table["custom_note_str"].to_list() == [None, "hello", None]
    assert len(summary.schema_changes) == 3, summary.schema_changes
