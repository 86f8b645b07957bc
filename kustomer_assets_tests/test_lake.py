"""Partition replacement on real Delta files: exact day replacement, drift, reruns, aborts."""

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from kustomer_assets.lake import DeltaStore, partitions
from kustomer_assets.lake.commits import create_table_once, is_commit_conflict
from kustomer_assets.lake.day_files import write_days
from kustomer_assets.records import TIMESTAMP

BASE = {"id": pl.Utf8, "updated_at": TIMESTAMP, "partition_date": pl.Date}


@pytest.fixture(autouse=True, params=["sorted in memory", "streamed day by day"])
def window_writer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on both of a window's write paths: small windows sorted in memory
    and written by delta-rs, large ones streamed by `lake/day_files.py`."""
    if request.param == "streamed day by day":
        monkeypatch.setattr(partitions, "SORT_IN_MEMORY_ROWS", 0)
    return request.param


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


def test_a_column_this_window_lacks_stays_with_its_values_on_other_days(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    write(store, 1, 2, rows(("a", at(1)), custom_vip_bool=[True]))
    write(store, 2, 3, rows(("b", at(2))))
    table = read(store)
    assert table.schema["custom_vip_bool"] == pl.Boolean
    assert table["custom_vip_bool"].to_list() == [True, None]


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


# --- type drift --------------------------------------------------------------------------------


def frame_with(
    column: str, dtype: pl.DataType, *items: tuple[str, datetime, object]
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [i for i, _, _ in items],
            "updated_at": [t for _, t, _ in items],
            "partition_date": [t.date() for _, t, _ in items],
            column: pl.Series([v for _, _, v in items], dtype=dtype),
        },
        schema={**BASE, column: dtype},
    )


def replace(store: DeltaStore, first: int, end: int, *frames: pl.DataFrame):
    with store.replace_days("t", date(2026, 11, first), date(2026, 11, end), BASE) as days:
        for frame in frames:
            days.add(frame)
        return days.commit()


def values(store: DeltaStore, column: str) -> dict[str, object]:
    """id -> value, wherever the writer put it (the column or a sibling `<column>__<type>`)."""
    table = read(store)
    siblings = [c for c in table.columns if c.startswith(f"{column}__")]
    out: dict[str, object] = {}
    for row in table.iter_rows(named=True):
        found = [row[c] for c in [column, *siblings] if row[c] is not None]
        assert len(found) <= 1, row
        out[row["id"]] = found[0] if found else None
    return out


def test_batches_that_disagree_on_a_type_are_widened_not_failed(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    summary = replace(
        store,
        1,
        3,
        frame_with("custom_x", pl.Int64, ("a", at(1), 1)),
        frame_with("custom_x", pl.Float64, ("b", at(1), 2.5)),
        frame_with("custom_x", pl.Null, ("c", at(2), None)),
        frame_with("custom_x", pl.Utf8, ("d", at(2), "N/A")),
        frame_with("custom_x", pl.List(pl.Int64), ("e", at(2), [1, 2])),
        frame_with("custom_x", pl.Boolean, ("f", at(2), True)),
    )
    assert read(store).schema["custom_x"] == pl.Utf8
    assert values(store, "custom_x") == {
        "a": "1",
        "b": "2.5",
        "c": None,
        "d": "N/A",
        "e": "[1,2]",
        "f": "true",
    }
    assert any("custom_x: batches disagreed" in c for c in summary.schema_changes)


def test_int_then_float_batches_widen_to_float(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    replace(
        store,
        1,
        2,
        frame_with("custom_n", pl.Int64, ("a", at(1), 1)),
        frame_with("custom_n", pl.Float64, ("b", at(1), 2.5)),
    )
    assert read(store).schema["custom_n"] == pl.Float64
    assert values(store, "custom_n") == {"a": 1.0, "b": 2.5}


def test_a_float_into_an_older_int_column_is_never_truncated(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    replace(store, 1, 2, frame_with("custom_score_num", pl.Int64, ("a", at(1), 3)))
    summary = replace(
        store,
        2,
        3,
        frame_with("custom_score_num", pl.Float64, ("b", at(2), 4.0), ("c", at(2), 2.5)),
    )
    table = read(store)
    assert table.schema["custom_score_num"] == pl.Int64  # the column keeps its type
    assert table.schema["custom_score_num__float64"] == pl.Float64
    assert values(store, "custom_score_num") == {"a": 3, "b": 4, "c": 2.5}
    assert summary.schema_changes == [
        "custom_score_num: 1 value(s) do not fit the table's Int64; written to "
        "custom_score_num__float64 (Float64) and left null in custom_score_num"
    ]
    assert summary.columns["custom_score_num__float64"] == "double"


def test_values_that_fit_the_older_type_are_cast_to_it(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    replace(store, 1, 2, frame_with("custom_score_num", pl.Int64, ("a", at(1), 3)))
    summary = replace(store, 2, 3, frame_with("custom_score_num", pl.Float64, ("b", at(2), 4.0)))
    assert "custom_score_num__float64" not in read(store).columns
    assert values(store, "custom_score_num") == {"a": 3, "b": 4}
    assert summary.schema_changes == [
        "custom_score_num: Float64 → Int64 (the table's type; every value fits)"
    ]


def test_text_into_an_older_number_column_keeps_the_text(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    replace(store, 1, 2, frame_with("custom_amount", pl.Float64, ("a", at(1), 1.5)))
    replace(
        store, 2, 3, frame_with("custom_amount", pl.Utf8, ("b", at(2), "12"), ("c", at(2), "3,50"))
    )
    # and a rerun reuses the sibling column instead of making another
    replace(
        store, 3, 4, frame_with("custom_amount", pl.Utf8, ("d", at(3), "x"), ("e", at(3), None))
    )
    table = read(store)
    assert [c for c in table.columns if c.startswith("custom_amount")] == [
        "custom_amount",
        "custom_amount__text",
    ]
    assert values(store, "custom_amount") == {"a": 1.5, "b": 12.0, "c": "3,50", "d": "x", "e": None}


def test_a_bool_column_meeting_text_and_lists(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    replace(store, 1, 2, frame_with("custom_vip_bool", pl.Boolean, ("a", at(1), True)))
    replace(store, 2, 3, frame_with("custom_vip_bool", pl.Utf8, ("b", at(2), "gold")))
    replace(store, 3, 4, frame_with("custom_vip_bool", pl.List(pl.Utf8), ("c", at(3), ["x"])))
    assert values(store, "custom_vip_bool") == {"a": True, "b": "gold", "c": '["x"]'}


def test_an_older_null_typed_column_takes_the_new_type(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    replace(store, 1, 2, frame_with("custom_late", pl.Null, ("a", at(1), None)))
    assert read(store).schema["custom_late"] == pl.Null
    summary = replace(store, 2, 3, frame_with("custom_late", pl.Float64, ("b", at(2), 1.5)))
    assert read(store).schema["custom_late"] == pl.Float64
    assert values(store, "custom_late") == {"a": None, "b": 1.5}
    assert summary.schema_changes == [
        "custom_late: Null → Float64 (the table's column had no type)"
    ]
    summary = replace(store, 3, 4, frame_with("custom_late", pl.Utf8, ("c", at(3), "two")))
    assert values(store, "custom_late") == {"a": None, "b": 1.5, "c": "two"}


def test_anything_into_an_older_text_column_is_written_as_text(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    replace(store, 1, 2, frame_with("custom_code", pl.Utf8, ("a", at(1), "A1")))
    replace(store, 2, 3, frame_with("custom_code", pl.Int64, ("b", at(2), 7)))
    replace(store, 3, 4, frame_with("custom_code", pl.Float64, ("c", at(3), 0.5)))
    assert read(store).schema["custom_code"] == pl.Utf8
    assert values(store, "custom_code") == {"a": "A1", "b": "7", "c": "0.5"}


def test_outside_rows_merge_with_drifted_types(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    replace(store, 5, 6, frame_with("custom_n", pl.Int64, ("old", at(5), 1)))
    summary = replace(
        store,
        10,
        11,
        frame_with("custom_n", pl.Float64, ("new", at(10), 2.0), ("ref", at(5, 3), 3.5)),
    )
    assert summary.rows_outside_window == 1
    assert values(store, "custom_n") == {"new": 2, "old": 1, "ref": 3.5}


def test_a_new_column_on_an_existing_table_is_reported(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    first = replace(store, 1, 2, rows(("a", at(1))))
    assert first.schema_changes == []
    summary = replace(store, 2, 3, frame_with("custom_new_str", pl.Utf8, ("b", at(2), "x")))
    assert summary.schema_changes == ["custom_new_str: new column (String)"]


def test_large_windows_stream_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(partitions, "SORT_IN_MEMORY_ROWS", 0)  # take the streaming path
    store = DeltaStore(str(tmp_path))
    replace(store, 5, 6, frame_with("custom_n", pl.Int64, ("old", at(5), 1)))
    replace(
        store,
        10,
        11,
        frame_with("custom_n", pl.Float64, ("new", at(10), 2.5)),
        frame_with("custom_n", pl.Int64, ("ref", at(5, 3), 3), ("new2", at(10, 1), 4)),
    )
    assert values(store, "custom_n") == {"new": 2.5, "new2": 4, "old": 1, "ref": 3}


def test_streamed_files_never_mislead_a_reader_that_skips_by_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deltalake's pyarrow dataset skips a file for any filter on a column whose bounds its
    statistics lack: streamed files carry their row count only, so every filter finds its
    rows, through that dataset as through polars."""
    monkeypatch.setattr(partitions, "SORT_IN_MEMORY_ROWS", 0)
    store = DeltaStore(str(tmp_path))
    frame = frame_with(
        "custom_n", pl.Int64, ("b", at(1), 3), ("a", at(1, 2), None), ("c", at(1, 3), 1)
    )
    replace(store, 1, 2, frame.with_columns(custom_x=pl.Series([1.0, float("nan"), None])))
    table = DeltaTable(store.uri("t"))
    (stats,) = pl.DataFrame(table.get_add_actions(flatten=True)).to_dicts()
    assert stats["num_records"] == 3
    dataset = table.to_pyarrow_dataset()
    for column, value, expected in (
        ("custom_n", 3, ["b"]),
        ("custom_x", 1.0, ["b"]),
        ("updated_at", at(1, 3), ["c"]),
        ("id", "c", ["c"]),
    ):
        found = dataset.to_table(filter=pc.field(column) == value)["id"].to_pylist()
        assert found == expected, column
        polars = store.scan("t").filter(pl.col(column) == value).collect()["id"].to_list()
        assert polars == expected, column


def test_two_writers_planning_on_one_snapshot_never_double_a_day(tmp_path: Path) -> None:
    """A transaction without a read predicate conflicts only on files both writers removed;
    a day that had none yet would hold both writers' rows. The second commit must fail as a
    conflict (the caller retries it) and take its files away."""
    uri = str(tmp_path / "t")
    schema = pa.schema(
        [
            ("id", pa.large_string()),
            ("updated_at", pa.timestamp("us", "UTC")),
            ("partition_date", pa.date32()),
        ]
    )
    create_table_once(uri, schema, ["partition_date"])

    def batch(tag: str) -> pa.Table:
        return pa.table(
            {
                "id": [tag, "x"],
                "updated_at": [at(1)] * 2,
                "partition_date": [date(2026, 11, 1)] * 2,
            },
            schema=schema,
        )

    first, second = DeltaTable(uri), DeltaTable(uri)  # both read version 0
    write_days(first, [batch("a")], schema, date(2026, 11, 1), date(2026, 11, 2), tmp_path / "s1")
    with pytest.raises(Exception) as lost:
        write_days(
            second, [batch("b")], schema, date(2026, 11, 1), date(2026, 11, 2), tmp_path / "s2"
        )
    assert is_commit_conflict(lost.value)
    assert sorted(DeltaTable(uri).to_pyarrow_table()["id"].to_pylist()) == ["a", "x"]
    on_disk = sorted(p.name for p in (tmp_path / "t" / "partition_date=2026-11-01").iterdir())
    assert len(on_disk) == 1  # the loser's file was removed
