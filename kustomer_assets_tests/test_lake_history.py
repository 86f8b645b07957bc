"""The lake's operations for derived tables and their readers: overwrite, upsert-and-delete in
one commit with a note, and reading versions, notes and the files of a version."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

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
