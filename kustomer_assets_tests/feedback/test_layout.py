"""Feedback partitioned by creation week: an incremental refresh rewrites only the weeks it
touches and still equals a full rebuild, on real Delta tables written by the lake's writer.

The raw tables hold two conversations created in each of three weeks, in September, October
and November 2026 (and one whose creation time is unknown), with messages, notes and CSAT
responses dated after them.
Each test changes some records, runs the refresh the asset runs (`find_changes` ->
`build_feedback(store, ids)` -> `merge_changes`) and compares the table with a full rebuild
of the same inputs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from deltalake import DeltaTable

from kustomer_assets.assets.feedback import feedback
from kustomer_assets.entities import (
    CONVERSATIONS,
    CUSTOMERS,
    MESSAGES,
    NOTES,
    SATISFACTION,
    EntitySpec,
)
from kustomer_assets.feedback.build import CREATED_MONTH, CREATED_WEEK, FEEDBACK, build_feedback
from kustomer_assets.feedback.build import first_day_to_read as first_day
from kustomer_assets.feedback.incremental import (
    INPUTS,
    ChangeSet,
    find_changes,
    input_versions,
    merge_changes,
    note_for,
    write_full,
)
from kustomer_assets.feedback.refresh import COMMIT_ATTEMPTS, FeedbackConflict
from kustomer_assets.feedback.refresh import refresh as feedback_refresh
from kustomer_assets.lake import DeltaStore
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets.removals import REMOVED_RECORDS, REMOVED_RECORDS_SCHEMA

SEP, OCT, NOV = date(2026, 9, 28), date(2026, 10, 12), date(2026, 11, 16)
"""The three creation weeks, by the Monday each starts on."""
CREATED = {
    "c-sep-1": datetime(2026, 9, 28, 8, tzinfo=UTC),  # a Monday
    "c-sep-2": datetime(2026, 9, 30, 23, 30, tzinfo=UTC),  # its messages are dated October
    "c-oct-1": datetime(2026, 10, 13, 9, tzinfo=UTC),
    "c-oct-2": datetime(2026, 10, 18, 23, 30, tzinfo=UTC),  # a Sunday, still that week
    "c-nov-1": datetime(2026, 11, 16, 10, tzinfo=UTC),
    "c-nov-2": datetime(2026, 11, 18, 10, tzinfo=UTC),
    "c-unknown": None,
}
WEEKS = {f"{week:%Y-%m-%d}": week for week in (SEP, OCT, NOV)}
TODAY = datetime(2026, 11, 20, 12, tzinfo=UTC)


def put(store: DeltaStore, spec: EntitySpec, rows: Iterable[dict]) -> None:
    """Write record versions as the raw assets do: into the day of their `updated_at`, with
    every column of the spec's schema (null where not given)."""
    schema = spec.mapper.base_schema
    frame = pl.DataFrame(
        [{**row, "partition_date": row["updated_at"].date()} for row in rows], schema=schema
    )
    for (day,), rows_of_day in frame.group_by("partition_date"):
        assert isinstance(day, date)
        with store.replace_days(spec.name, day, day + timedelta(days=1), schema) as days:
            days.add(rows_of_day)
            days.commit()


def conversation(cid: str, updated_at: datetime, **changes: object) -> dict:
    created = changes.pop("created_at", CREATED[cid])
    return {
        "id": cid,
        "created_at": created,
        "updated_at": updated_at,
        "status": "open",
        "customer_id": "k1",
        "tag_ids": [],
        "assigned_user_ids": [],
        "assigned_team_ids": [],
        **changes,
    }


def message(mid: str, cid: str, sent_at: datetime, text: str) -> dict:
    return {
        "id": mid,
        "conversation_id": cid,
        "updated_at": sent_at,
        "created_at": sent_at,
        "sent_at": sent_at,
        "direction": "in",
        "preview_text": text,
    }


def after(cid: str, hours: int) -> datetime:
    return (CREATED[cid] or datetime(2026, 11, 1, tzinfo=UTC)) + timedelta(hours=hours)


@pytest.fixture
def store(tmp_path: Path) -> DeltaStore:
    """The raw tables, then a full feedback build (partitioned by creation week)."""
    lake = DeltaStore(str(tmp_path / "delta"))
    put(lake, CUSTOMERS, [{"id": "k1", "updated_at": datetime(2026, 8, 1, tzinfo=UTC)}])
    put(lake, CONVERSATIONS, [conversation(c, after(c, 2)) for c in CREATED])
    put(lake, MESSAGES, [message(f"m-{c}", c, after(c, 1), f"hello from {c}") for c in CREATED])
    put(
        lake, NOTES, [{"id": "n1", "conversation_id": "c-oct-1", "updated_at": after("c-oct-1", 3)}]
    )
    put(
        lake,
        SATISFACTION,
        [
            {
                "id": "s1",
                "conversation_id": "c-sep-2",
                "updated_at": after("c-sep-2", 30),
                "rating": 4.0,
            }
        ],
    )
    refresh(lake)
    return lake


def refresh(store: DeltaStore) -> ChangeSet:
    """What the `feedback` asset runs (on a pinned store, retried on a lost commit)."""
    return feedback_refresh(lambda: store)[1].changes


def files_by_week(store: DeltaStore) -> dict[str, set[str]]:
    files: dict[str, set[str]] = {}
    for uri in DeltaTable(store.uri(FEEDBACK)).file_uris():
        files.setdefault(uri.rsplit("/", 2)[-2].removeprefix(f"{CREATED_WEEK}="), set()).add(uri)
    return files


def assert_rewrote_only(store: DeltaStore, before: dict[str, set[str]], week: str) -> None:
    """The last commit overwrote exactly `week`'s files (named in its predicate) and no
    other's."""
    (entry,) = DeltaTable(store.uri(FEEDBACK)).history(1)
    assert entry["operation"] == "WRITE"
    assert entry["operationParameters"]["mode"] == "Overwrite"
    predicate = entry["operationParameters"]["predicate"]
    assert f"'{week}'" in predicate
    assert not any(f"'{other}'" in predicate for other in WEEKS if other != week), predicate
    assert entry["operationMetrics"]["num_removed_files"] == len(before[week])


def assert_equals_a_full_rebuild(store: DeltaStore) -> pl.DataFrame:
    table = store.scan(FEEDBACK).collect().sort("conversation_id")
    full = build_feedback(store, None).sort("conversation_id")
    assert table.select(sorted(table.columns)).equals(full.select(sorted(full.columns)))
    return table


def week_of(table: pl.DataFrame, cid: str) -> date | None:
    return table.filter(pl.col("conversation_id") == cid)[CREATED_WEEK].item()


def month_of(table: pl.DataFrame, cid: str) -> date | None:
    return table.filter(pl.col("conversation_id") == cid)[CREATED_MONTH].item()


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def test_a_full_build_is_partitioned_by_creation_week_unknown_ones_in_the_null_partition(
    store: DeltaStore,
) -> None:
    assert store.partition_columns(FEEDBACK) == [CREATED_WEEK]
    table = assert_equals_a_full_rebuild(store)
    assert week_of(table, "c-sep-1") == SEP  # a Monday starts its own week
    assert week_of(table, "c-oct-2") == OCT  # 23:30 UTC on a Sunday ends the week
    assert week_of(table, "c-unknown") is None
    assert set(files_by_week(store)) == {*WEEKS, "__HIVE_DEFAULT_PARTITION__"}
    assert store.scan(FEEDBACK).filter(pl.col(CREATED_WEEK) == NOV).collect().height == 2
    # The month stays a column for monthly reports: 23:30 UTC on the 30th is September.
    assert month_of(table, "c-sep-2") == date(2026, 9, 1)
    assert month_of(table, "c-unknown") is None


def test_a_change_in_the_latest_week_rewrites_only_that_week(store: DeltaStore) -> None:
    before = files_by_week(store)
    put(store, CONVERSATIONS, [conversation("c-nov-1", TODAY, status="done")])
    put(store, MESSAGES, [message("m-new", "c-nov-2", TODAY, "one more thing")])
    changes = refresh(store)
    assert not changes.full and changes.conversation_ids == {"c-nov-1", "c-nov-2"}
    after_merge = files_by_week(store)
    assert after_merge["2026-11-16"] != before["2026-11-16"]
    for week in ("2026-09-28", "2026-10-12", "__HIVE_DEFAULT_PARTITION__"):
        assert after_merge[week] == before[week], week
    assert_rewrote_only(store, before, "2026-11-16")
    table = assert_equals_a_full_rebuild(store)
    row = table.filter(pl.col("conversation_id") == "c-nov-2").row(0, named=True)
    assert row["message_count_in"] == 2


def test_a_change_in_an_old_week_rewrites_only_that_week(store: DeltaStore) -> None:
    before = files_by_week(store)
    put(
        store,
        SATISFACTION,
        [{"id": "s1", "conversation_id": "c-sep-2", "updated_at": TODAY, "rating": 1.0}],
    )
    put(
        store,
        NOTES,
        [{"id": "n2", "conversation_id": "c-sep-1", "updated_at": TODAY, "body": "late"}],
    )
    assert refresh(store).conversation_ids == {"c-sep-1", "c-sep-2"}
    after_merge = files_by_week(store)
    assert after_merge["2026-09-28"] != before["2026-09-28"]
    assert {w: f for w, f in after_merge.items() if w != "2026-09-28"} == {
        w: f for w, f in before.items() if w != "2026-09-28"
    }
    assert_rewrote_only(store, before, "2026-09-28")
    table = assert_equals_a_full_rebuild(store)
    rows = {r["conversation_id"]: r for r in table.iter_rows(named=True)}
    assert rows["c-sep-2"]["csat_rating"] == 1.0
    assert rows["c-sep-1"]["internal_notes_text"] == "late"
    assert rows["c-sep-2"]["transcript_text"] == "customer: hello from c-sep-2"


def test_deleted_and_removed_conversations_leave_their_weeks(store: DeltaStore) -> None:
    before = files_by_week(store)
    put(store, CONVERSATIONS, [conversation("c-oct-2", TODAY, deleted=True)])
    removal = {
        "entity": CONVERSATIONS.name,
        "id": "c-unknown",
        "removed_from_kustomer_at": TODAY,
        "merged_into_id": None,
        "last_updated_at": TODAY,
    }
    store.overwrite(REMOVED_RECORDS, pl.DataFrame([removal], schema=REMOVED_RECORDS_SCHEMA), None)
    assert refresh(store).conversation_ids == {"c-oct-2", "c-unknown"}
    table = assert_equals_a_full_rebuild(store)
    assert {"c-oct-2", "c-unknown"}.isdisjoint(table["conversation_id"].to_list())
    after_merge = files_by_week(store)
    assert after_merge["2026-09-28"] == before["2026-09-28"]
    assert after_merge["2026-11-16"] == before["2026-11-16"]
    assert after_merge["2026-10-12"] != before["2026-10-12"]  # c-oct-1 stays in it
    assert after_merge.get("__HIVE_DEFAULT_PARTITION__") != before["__HIVE_DEFAULT_PARTITION__"]


@pytest.mark.parametrize(
    ("cid", "created_at"),
    [
        ("c-sep-1", datetime(2026, 11, 19, tzinfo=UTC)),  # later: its messages predate it
        ("c-nov-1", datetime(2026, 10, 2, tzinfo=UTC)),  # earlier, into a week of others
        ("c-oct-1", None),  # unknown: into the null partition
        ("c-unknown", datetime(2026, 9, 9, tzinfo=UTC)),  # known at last
    ],
)
def test_a_creation_time_moved_to_another_week_moves_the_row(
    store: DeltaStore, cid: str, created_at: datetime | None
) -> None:
    put(store, CONVERSATIONS, [conversation(cid, TODAY, created_at=created_at)])
    assert refresh(store).conversation_ids == {cid}
    table = assert_equals_a_full_rebuild(store)
    assert table.height == len(CREATED)
    expected = None if created_at is None else monday(created_at.date())
    assert week_of(table, cid) == expected
    assert table.filter(pl.col("conversation_id") == cid)["message_count_in"].item() == 1


def test_the_build_reads_days_from_the_earliest_creation_any_version_gives(
    store: DeltaStore,
) -> None:
    assert first_day(store, ["c-nov-2", "c-nov-1"]) == date(2026, 11, 15)  # a day of skew
    assert first_day(store, ["c-nov-1", "c-unknown"]) is None
    assert first_day(store, []) is None
    put(store, CONVERSATIONS, [conversation("c-sep-1", TODAY, created_at=TODAY)])
    assert first_day(store, ["c-sep-1"]) == date(2026, 9, 27)  # its older version says so


def test_an_incremental_build_reads_no_day_before_its_conversations_were_created(
    store: DeltaStore,
) -> None:
    """The assumption the pruning rests on, shown with a message that breaks it: stamped
    three days before its conversation was created, a full build sees it, an incremental one
    does not read its day."""
    early = CREATED["c-nov-1"] - timedelta(days=3)  # type: ignore[operator]
    put(store, MESSAGES, [message("m-early", "c-nov-1", early, "from the past")])
    count = pl.col("message_count_in")
    built = build_feedback(store, {"c-nov-1"})
    full = build_feedback(store, None).filter(pl.col("conversation_id") == "c-nov-1")
    assert (built.select(count).item(), full.select(count).item()) == (1, 2)


@pytest.mark.parametrize(
    ("layout", "said"),
    [([], "unpartitioned"), ([CREATED_MONTH], f"partitioned by {CREATED_MONTH}")],
    ids=["unpartitioned", "by-month"],
)
def test_a_table_an_older_version_wrote_is_rebuilt_in_full_once(
    store: DeltaStore, layout: list[str], said: str
) -> None:
    """Written as older versions wrote it (unpartitioned, then partitioned by creation month,
    without the week column): the next build says why and rewrites it by week; the one after
    merges again."""
    old = build_feedback(store, None).drop(CREATED_WEEK)
    if not layout:
        old = old.drop(CREATED_MONTH)
    shutil.rmtree(store.uri(FEEDBACK))
    # The older write_full.
    store.overwrite(FEEDBACK, old, note_for(input_versions(store)), partition_by=layout or None)
    assert store.partition_columns(FEEDBACK) == layout
    changes = find_changes(store, FEEDBACK)
    assert changes.full and said in changes.reason and CREATED_WEEK in changes.reason
    with pytest.raises(ValueError, match="not merged into"):
        merge_changes(store, FEEDBACK, build_feedback(store, {"c-nov-1"}), {"c-nov-1"}, {})
    assert store.partition_columns(FEEDBACK) == layout  # the refused merge wrote nothing

    resources = {"lake": DeltaLakeResource(root=store.root)}
    with dg.instance_for_test() as instance:
        first = dg.materialize([feedback], resources=resources, instance=instance)
        logs = [entry.user_message for entry in instance.all_logs(first.run_id)]
        assert store.partition_columns(FEEDBACK) == [CREATED_WEEK]
        put(store, CONVERSATIONS, [conversation("c-nov-1", TODAY, status="done")])
        second = dg.materialize([feedback], resources=resources, instance=instance)
    assert any("full rebuild" in line and said in line for line in logs), logs
    modes = [
        run.asset_materializations_for_node("feedback")[0].metadata["mode"].value
        for run in (first, second)
    ]
    assert modes == ["full", "incremental"]
    assert store.partition_columns(FEEDBACK) == [CREATED_WEEK]
    assert DeltaTable(store.uri(FEEDBACK)).history(1)[0]["operation"] == "WRITE"
    table = assert_equals_a_full_rebuild(store)
    assert table.filter(pl.col("conversation_id") == "c-nov-1")["status"].item() == "done"


def test_a_merge_touching_no_partition_rewrites_nothing(store: DeltaStore) -> None:
    """A conversation removed before feedback ever held it: no partition is named (the
    predicate is FALSE), and nothing is rewritten."""
    before = files_by_week(store)
    version = store.version(FEEDBACK)
    versions = input_versions(store)
    assert merge_changes(store, FEEDBACK, pl.DataFrame(), {"c-never-built"}, versions) == 0
    assert files_by_week(store) == before
    assert store.version(FEEDBACK) == version
    assert_equals_a_full_rebuild(store)


class Lines:
    """A log that keeps its warnings."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def info(self, msg: str, *args: object) -> None:
        pass

    def warning(self, msg: str, *args: object) -> None:
        self.warnings.append(msg % args)


def late_build(store: DeltaStore) -> Callable[[], None]:
    """Another feedback build that read the tables now and commits later (an automation tick
    beside a manual run): its rows and commit note are of the versions it read."""
    rows, versions = build_feedback(store, None), input_versions(store)
    return lambda: write_full(store, FEEDBACK, rows, versions)


def opening(store: DeltaStore, before_each: Callable[[int], None]) -> Callable[[], DeltaStore]:
    """The store a refresh opens, with `before_each(n)` run once its n-th pinned view has
    opened every table: a write there lands after the refresh pinned its versions."""
    opened = 0

    def open_store() -> DeltaStore:
        nonlocal opened
        opened += 1
        pinned = store.pinned()
        pinned.prefetch((*INPUTS, FEEDBACK))
        before_each(opened)
        return pinned

    return open_store


def test_a_refresh_beaten_to_its_commit_is_built_again_on_the_new_versions(
    store: DeltaStore,
) -> None:
    """The other build commits after this refresh pinned its versions: the refresh's write
    conflicts instead of landing over it unseen, and it is done again on the new versions
    (the other build's note says what it covered), ending equal to a full rebuild."""
    other = late_build(store)
    put(store, CONVERSATIONS, [conversation("c-nov-1", TODAY, status="done")])
    calls: list[int] = []
    log = Lines()
    _, done = feedback_refresh(
        opening(store, lambda n: (calls.append(n), other() if n == 1 else None)), log=log
    )
    assert calls == [1, 2]
    assert log.warnings == [
        f"feedback: another write to feedback committed while this build ran (attempt 1 of "
        f"{COMMIT_ATTEMPTS}); building again on the new versions"
    ]
    assert not done.full and done.changes.conversation_ids == {"c-nov-1"}
    table = assert_equals_a_full_rebuild(store)
    assert table.filter(pl.col("conversation_id") == "c-nov-1")["status"].item() == "done"


def test_a_refresh_beaten_every_time_gives_up_in_one_sentence(store: DeltaStore) -> None:
    other = late_build(store)
    put(store, CONVERSATIONS, [conversation("c-nov-1", TODAY, status="done")])
    with pytest.raises(FeedbackConflict, match="3 times in a row, so this run wrote nothing"):
        feedback_refresh(opening(store, lambda _n: other()), log=Lines())
    stale = store.scan(FEEDBACK).filter(pl.col("conversation_id") == "c-nov-1").collect()
    assert stale["status"].item() == "open"  # the other builds' rows, none of this one's
    refresh(store)  # the next run picks up from them
    assert_equals_a_full_rebuild(store)
