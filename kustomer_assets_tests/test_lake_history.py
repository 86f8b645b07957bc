"""The lake's operations for derived tables and their readers: overwrite, upsert-and-delete in
one commit with a note, and reading versions, notes and the files of a version."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from deltalake.exceptions import CommitFailedError

from kustomer_assets.lake import DeltaStore
from kustomer_assets.lake.versions import VersionGone

NOTE = "test.note"


def rows(*items: tuple[str, int]) -> pl.DataFrame:
    return pl.DataFrame({"key": [k for k, _ in items], "n": [n for _, n in items]})


def table(store: DeltaStore) -> list[tuple]:
    return store.scan("t").collect().sort("key").rows()


def test_overwrite_creates_then_replaces_whole_with_its_note(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    store.overwrite("t", rows(("a", 1), ("b", 2)), {NOTE: "first"})
    store.overwrite("t", rows(("c", 3)).with_columns(pl.lit("x").alias("new")), {NOTE: "second"})
    assert table(store) == [("c", 3, "x")]
    assert store.latest_note("t", NOTE) == "second"
    assert [e[NOTE] for e in store.history("t") if NOTE in e] == ["second", "first"]


def test_upsert_and_delete_are_one_commit_carrying_the_note(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    store.overwrite("t", rows(("a", 1), ("b", 2), ("c", 3)), {NOTE: "built"})
    before = store.version("t")
    new = rows(("a", 10), ("d", 4)).with_columns(pl.lit("y").alias("extra"))
    removed = store.upsert("t", new, "key", {"b", "zz"}, {NOTE: "merged"})
    assert removed == 1
    assert store.version("t") == before + 1
    assert store.latest_note("t", NOTE) == "merged"
    assert table(store) == [("a", 10, "y"), ("c", 3, None), ("d", 4, "y")]


def test_upsert_of_deletions_only_and_of_nothing(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    store.overwrite("t", rows(("a", 1), ("b", 2)), None)
    assert store.upsert("t", pl.DataFrame(), "key", {"a"}, {NOTE: "gone"}) == 1
    assert table(store) == [("b", 2)]
    version = store.version("t")
    assert store.upsert("t", pl.DataFrame(), "key", set(), {NOTE: "idle"}) == 0
    assert store.version("t") == version  # nothing to do: no commit


def test_a_key_both_upserted_and_deleted_is_refused(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    store.overwrite("t", rows(("a", 1)), None)
    with pytest.raises(ValueError, match="both upserted and deleted"):
        store.upsert("t", rows(("a", 2)), "key", {"a"}, None)
    assert table(store) == [("a", 1)]


def test_rows_repeating_a_key_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    store.overwrite("t", rows(("a", 1)), None)
    with pytest.raises(ValueError, match=r"rows repeat keys .*\['z'\]"):
        store.upsert("t", rows(("z", 2), ("z", 3), ("a", 4)), "key", set(), None)
    assert table(store) == [("a", 1)]


def test_files_of_a_version_and_of_a_version_that_is_gone(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    store.overwrite("t", rows(("a", 1)), None)
    first = store.version("t")
    store.overwrite("t", rows(("b", 2)), None)
    old, new = store.files_at("t", first), store.files_at("t", store.version("t"))
    assert old and new and not old & new
    assert store.read_files(old, ["key"])["key"].to_list() == ["a"]
    assert store.read_files([], ["key"]).is_empty()
    with pytest.raises(VersionGone):
        store.files_at("t", 99)
    for uri in old:
        Path(uri.removeprefix("file://")).unlink()  # as a vacuum would
    assert store.read_files(old, ["key"]) is None


def test_history_and_notes_of_a_missing_table_are_empty(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    assert store.history("nothing") == []
    assert store.latest_note("nothing", NOTE) is None
    assert store.commit_notes("nothing", NOTE, "x") == []


def partitioned(*items: tuple[str, int, str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "key": [k for k, _, _ in items],
            "n": [n for _, n, _ in items],
            "p": [p for *_, p in items],
        }
    )


def files_by_partition(store: DeltaStore) -> dict[str, set[str]]:
    files: dict[str, set[str]] = {}
    for uri in store.files_at("t", store.version("t")):
        files.setdefault(uri.rsplit("/", 2)[-2], set()).add(uri)
    return files


def test_a_partitioned_upsert_rewrites_only_the_partitions_touched(tmp_path: Path) -> None:
    """Rows replaced, one moved to another partition, one deleted from the null partition, a
    new column added: one commit with the note, and the untouched partition keeps its files."""
    store = DeltaStore(str(tmp_path))
    store.overwrite(
        "t",
        partitioned(("a", 1, "x"), ("b", 2, "x"), ("c", 3, "y"), ("d", 4, None), ("e", 5, "z")),
        {NOTE: "built"},
        partition_by=["p"],
    )
    before = files_by_partition(store)
    version = store.version("t")
    new = partitioned(("a", 10, "x"), ("b", 20, "y"), ("f", 6, "x")).with_columns(
        pl.lit("new").alias("extra")
    )
    assert store.upsert("t", new, "key", {"d"}, {NOTE: "merged"}, partition_by="p") == 1
    assert store.version("t") == version + 1
    assert store.latest_note("t", NOTE) == "merged"
    assert store.scan("t").collect().sort("key").rows() == [
        ("a", 10, "x", "new"),
        ("b", 20, "y", "new"),
        ("c", 3, "y", None),
        ("e", 5, "z", None),
        ("f", 6, "x", "new"),
    ]
    after = files_by_partition(store)
    assert after["p=z"] == before["p=z"]
    assert after["p=x"] != before["p=x"] and after["p=y"] != before["p=y"]
    assert "p=__HIVE_DEFAULT_PARTITION__" not in after
    with pytest.raises(ValueError, match="not merged into"):
        store.upsert("t", new, "key", set(), None, partition_by="n")


def test_a_pinned_store_reads_each_table_as_first_opened_until_it_writes(tmp_path: Path) -> None:
    store = DeltaStore(str(tmp_path))
    store.overwrite("t", rows(("a", 1)), {NOTE: "first"})
    pinned = store.pinned()
    pinned.prefetch(["t", "missing"])
    first = pinned.version("t")
    store.overwrite("t", rows(("b", 2)), {NOTE: "second"})  # another writer, after the pin
    store.overwrite("missing", rows(("m", 0)), None)
    assert pinned.version("t") == first
    assert pinned.scan("t").collect().rows() == [("a", 1)]
    assert pinned.files_at("t", first) == store.files_at("t", first)
    assert pinned.latest_note("t", NOTE) == "second"  # notes are the log's latest
    assert not pinned.exists("missing")  # as it was when first looked at
    assert pinned.history("missing") == []
    pinned.overwrite("t", rows(("c", 3)), {NOTE: "third"})  # its own write unpins the table
    assert pinned.version("t") == store.version("t") == first + 2
    assert pinned.scan("t").collect().rows() == [("c", 3)]
    assert store.pinned() is not store and pinned.pinned() is pinned


def test_a_partitioned_upsert_through_a_stale_pin_conflicts_instead_of_losing_a_write(
    tmp_path: Path,
) -> None:
    """Another writer rewrote the partition after this store pinned the table: the rewrite
    is checked against the pinned version and refused, so the other write is not lost."""
    store = DeltaStore(str(tmp_path))
    store.overwrite("t", partitioned(("a", 0, "x"), ("b", 0, "y")), None, partition_by=["p"])
    pinned = store.pinned()
    pinned.prefetch(["t"])
    store.upsert("t", partitioned(("a", 1, "x")), "key", set(), None, partition_by="p")
    with pytest.raises(CommitFailedError):
        pinned.upsert("t", partitioned(("a", 2, "x")), "key", set(), None, partition_by="p")
    assert store.scan("t").collect().sort("key").rows() == [("a", 1, "x"), ("b", 0, "y")]
