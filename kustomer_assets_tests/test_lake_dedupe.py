"""De-duplication of a window staged in many batches: the table and the counts are those of
keeping the first copy of every version, and no step reads more than about one batch of keys."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from kustomer_assets.lake import DeltaStore, WriteSummary, dedupe
from kustomer_assets.records import TIMESTAMP

BASE = {"id": pl.Utf8, "updated_at": TIMESTAMP, "partition_date": pl.Date, "v": pl.Int64}
FIRST, END = date(2026, 11, 10), date(2026, 11, 13)
"""The window: three days; rows of other days are merged into their own day."""


def frame(rows: list[tuple[str, datetime, date | None, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [r[0] for r in rows],
            "updated_at": [r[1] for r in rows],
            "partition_date": [r[2] for r in rows],
            "v": [r[3] for r in rows],
        },
        schema=BASE,
    )


def generated_batches(seed: int, batches: int, size: int) -> list[pl.DataFrame]:
    """Batches drawing versions from a small pool, so that most versions come back in later
    batches and some within one; a few lie outside the window, a few have no day."""
    rng = random.Random(seed)
    pool = []
    for n in range(size * batches // 3):
        day = rng.choice([*(FIRST + timedelta(days=d) for d in range(3)), date(2026, 11, 2)])
        stamp = datetime(day.year, day.month, day.day, rng.randrange(24), tzinfo=UTC)
        pool.append((f"r{n % (size * 2)}", stamp, None if rng.random() < 0.03 else day))
    out, counter = [], 0
    for _ in range(batches):
        rows = []
        for _ in range(rng.randint(1, size)):
            counter += 1
            rows.append((*rng.choice(pool), counter))  # v tells which copy was written
        out.append(frame(rows))
    return out


def expected(batches: list[pl.DataFrame]) -> tuple[pl.DataFrame, WriteSummary]:
    """What keeping a set of every version seen gives, batch by batch, row by row."""
    seen: set[tuple[object, object]] = set()
    kept, summary = [], WriteSummary()
    for batch in batches:
        for row in batch.iter_rows(named=True):
            key = (row["id"], row["updated_at"])
            if key in seen:
                summary.duplicates_dropped += 1
                continue
            seen.add(key)
            day = row["partition_date"]
            if day is None:
                continue
            kept.append(row)
            if FIRST <= day < END:
                summary.rows += 1
                summary.rows_per_day[day.isoformat()] = (
                    summary.rows_per_day.get(day.isoformat(), 0) + 1
                )
            else:
                summary.rows_outside_window += 1
    summary.rows_per_day = dict(sorted(summary.rows_per_day.items()))
    return pl.DataFrame(kept, schema=BASE).sort("id", "updated_at"), summary


def stage(store: DeltaStore, batches: list[pl.DataFrame]) -> WriteSummary:
    with store.replace_days("t", FIRST, END, BASE) as days:
        for batch in batches:
            days.add(batch)
        return days.commit()


def table(store: DeltaStore) -> pl.DataFrame:
    return store.scan("t").collect().select(list(BASE)).sort("id", "updated_at")


def same_counts(got: WriteSummary, want: WriteSummary) -> None:
    assert got.rows == want.rows
    assert got.rows_per_day == want.rows_per_day
    assert got.duplicates_dropped == want.duplicates_dropped
    assert got.rows_outside_window == want.rows_outside_window


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_batches_with_cross_batch_copies_give_the_first_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    batches = generated_batches(seed, batches=40, size=12)
    want_table, want = expected(batches)
    assert want.duplicates_dropped > 100  # the case is real: most rows are copies

    in_memory = DeltaStore(str(tmp_path / "in-memory"))
    same_counts(stage(in_memory, batches), want)
    assert table(in_memory).equals(want_table)

    # Buckets of one batch: the windows' keys go to disk and come back one bucket at a time.
    monkeypatch.setattr(dedupe, "DEDUPE_BUCKET_ROWS", 1)
    read: list[int] = []
    real = dedupe._read_bucket
    monkeypatch.setattr(dedupe, "_read_bucket", lambda f: read.append(len(r := real(f))) or r)
    on_disk = DeltaStore(str(tmp_path / "on-disk"))
    same_counts(stage(on_disk, batches), want)
    assert table(on_disk).equals(want_table)
    largest = max(b.height for b in batches)
    total = sum(b.height for b in batches)
    assert len(read) > total // largest  # many buckets, plus the files' drops
    assert max(read) <= 3 * largest  # never the window: about one batch at a time


def test_a_batch_made_only_of_copies_leaves_no_trace(tmp_path: Path) -> None:
    """Its rows are dropped, and so is what it alone staged: a column no kept row has."""
    stamp = datetime(2026, 11, 10, 9, tzinfo=UTC)
    first = frame([("a", stamp, stamp.date(), 1), ("b", stamp, stamp.date(), 2)])
    copies = frame([("b", stamp, stamp.date(), 3), ("a", stamp, stamp.date(), 4)])
    copies = copies.with_columns(pl.lit("only here").alias("custom_extra_str"))
    store = DeltaStore(str(tmp_path))
    summary = stage(store, [first, copies])
    assert summary.duplicates_dropped == 2
    assert summary.rows_per_day == {"2026-11-10": 2}
    written = store.scan("t").collect()
    assert "custom_extra_str" not in written.columns
    assert sorted(written["v"].to_list()) == [1, 2]


def test_a_version_first_seen_without_a_day_is_still_a_copy_later(tmp_path: Path) -> None:
    """Rows without a day are never written, but their versions count as seen (as before)."""
    stamp = datetime(2026, 11, 11, 9, tzinfo=UTC)
    store = DeltaStore(str(tmp_path))
    summary = stage(
        store,
        [
            frame([("a", stamp, None, 1)]),
            frame([("a", stamp, stamp.date(), 2), ("b", stamp, stamp.date(), 3)]),
        ],
    )
    assert summary.duplicates_dropped == 1 and summary.rows == 1
    assert store.scan("t").collect()["id"].to_list() == ["b"]


def test_copies_outside_the_window_are_merged_once(tmp_path: Path) -> None:
    old = datetime(2026, 11, 2, 9, tzinfo=UTC)
    inside = datetime(2026, 11, 12, 9, tzinfo=UTC)
    batches = [
        frame([("ref", old, old.date(), 1), ("x", inside, inside.date(), 2)]),
        frame([("ref", old, old.date(), 3)]),
        frame([("ref", old, old.date(), 4), ("y", inside, inside.date(), 5)]),
    ]
    store = DeltaStore(str(tmp_path))
    summary = stage(store, batches)
    assert summary.rows_outside_window == 1 and summary.duplicates_dropped == 2
    assert table(store)["v"].to_list() == [1, 2, 5]
