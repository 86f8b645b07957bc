"""Partition replacement on real Delta files: exact day replacement, drift, reruns, aborts."""

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from kustomer_assets.lake import DeltaStore
from kustomer_assets.records import TIMESTAMP

BASE = {"id": pl.Utf8, "updated_at": TIMESTAMP, "partition_date": pl.Date}


def rows(*items: tuple[str, datetime], **extra: list) -> pl.DataFrame:
    data = {
        "id": [i for i, _ in items],
        "updated_at": [t for _, t in items],
        "partition_date": [t.date() for _, t in items],
        **extra,
    }
    schema = dict(BASE)
    if "custom_vip_bool" in extra:
        schema["custom_vip_bool"] = pl.Boolean
    return pl.DataFrame(data, schema=schema)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def write(store: DeltaStore, first: int, end: int, *frames: pl.DataFrame) -> None:
    with store.replace_days("t", date(2026, 11, first), date(2026, 11, end), BASE) as days:
        for frame in frames:
            days.add(frame)
        days.commit()


def read(store: DeltaStore) -> pl.DataFrame:
    return store.scan("t").collect().sort("id", "updated_at")


def test_replaces_exactly_the_window_days(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    write(store, 1, 4, rows(("a", at(1)), ("b", at(2)), ("c", at(3))))
    write(store, 2, 3, rows(("b2", at(2))))
    assert read(store)["id"].to_list() == ["a", "b2", "c"]


def test_rerun_gives_the_same_table(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    batch = rows(("a", at(1)), ("b", at(2)))
    write(store, 1, 3, batch)
    first = read(store)
    write(store, 1, 3, batch)
    assert read(store).equals(first)


def test_duplicates_across_batches_are_dropped(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    with store.replace_days("t", date(2026, 11, 1), date(2026, 11, 3), BASE) as days:
        days.add(rows(("a", at(1)), ("b", at(2))))
        days.add(rows(("a", at(1)), ("a", at(2))))
        summary = days.commit()
    assert summary.rows == 3
    assert summary.duplicates_dropped == 1
    assert summary.rows_per_day == {"2026-11-01": 1, "2026-11-02": 2}
    assert read(store).height == 3


def test_rows_outside_the_window_are_added_to_their_day_without_wiping_it(tmp_path) -> None:
    store = DeltaStore(str(tmp_path))
    write(store, 5, 6, rows(("old", at(5, 1)), ("other", at(5, 2))))
    for _ in range(2):  # a rerun adds nothing twice
        with store.replace_days("t", date(2026, 11, 10), date(2026, 11, 11), BASE) as days:
            days.add(rows(("new", at(10)), ("referenced", at(5, 3)), ("old", at(5, 1))))
            summary = days.commit()
        assert summary.rows == 1 and summary.rows_outside_window == 2
    table = read(store)
    assert table["id"].to_list() == ["new", "old", "other", "referenced"]
    assert table.filter(pl.col("id") == "referenced")["partition_date"].to_list() == [
        date(2026, 11, 5)
    ]


def test_new_custom_column_mid_history_is_added_with_nulls_before(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    write(store, 1, 2, rows(("a", at(1))))
    write(store, 2, 3, rows(("b", at(2)), custom_vip_bool=[True]))
    table = read(store)
    assert table.schema["custom_vip_bool"] == pl.Boolean
    assert table["custom_vip_bool"].to_list() == [None, True]


def test_empty_window_clears_those_days(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    write(store, 1, 3, rows(("a", at(1)), ("b", at(2))))
    write(store, 2, 3)
    assert read(store)["id"].to_list() == ["a"]


def test_abort_leaves_the_previous_version(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    write(store, 1, 3, rows(("a", at(1)), ("b", at(2))))
    with (
        pytest.raises(RuntimeError),
        store.replace_days("t", date(2026, 11, 1), date(2026, 11, 3), BASE) as days,
    ):
        days.add(rows(("x", at(1))))
        raise RuntimeError("killed halfway")
    assert read(store)["id"].to_list() == ["a", "b"]
