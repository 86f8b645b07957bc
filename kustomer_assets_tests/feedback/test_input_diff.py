"""Which conversations a change to each feedback input selects, on real Delta tables.

The inputs and their links are derived from the spec table (`entities.py`); these tests write
a few records per input with the lake's own writer, take a build's state note, change one
input and check the conversations `find_changes` selects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from kustomer_assets.entities import (
    BRANDS,
    CONVERSATIONS,
    CUSTOMERS,
    ENTITIES,
    MESSAGES,
    NOTES,
    SATISFACTION,
    TAGS,
    TEAMS,
    USERS,
    EntitySpec,
    Join,
)
from kustomer_assets.feedback import incremental
from kustomer_assets.feedback.build import CREATED_WEEK, FEEDBACK
from kustomer_assets.feedback.incremental import (
    INPUTS,
    find_changes,
    input_versions,
    last_build_state,
    merge_changes,
    write_full,
)
from kustomer_assets.lake import DeltaStore
from kustomer_assets.removals import REMOVED_RECORDS, REMOVED_RECORDS_SCHEMA

DAY = date(2026, 11, 10)


def at(hour: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def put(store: DeltaStore, spec: EntitySpec, rows: Iterable[dict], day: date = DAY) -> None:
    """Write record versions into `day` of the spec's table, as the raw assets do."""
    schema = spec.mapper.base_schema
    records = [{**r, "partition_date": r["updated_at"].date()} for r in rows]
    columns = {c for r in records for c in r}
    frame = pl.DataFrame(records, schema={c: t for c, t in schema.items() if c in columns})
    with store.replace_days(spec.name, day, day + timedelta(days=1), schema) as days:
        days.add(frame)
        days.commit()


def remove(store: DeltaStore, *rows: tuple[EntitySpec, str, str | None]) -> None:
    removals = pl.DataFrame(
        [
            {
                "entity": spec.name,
                "id": record_id,
                "removed_from_kustomer_at": at(20),
                "merged_into_id": survivor,
                "last_updated_at": at(1),
            }
            for spec, record_id, survivor in rows
        ],
        schema=REMOVED_RECORDS_SCHEMA,
    )
    store.overwrite(REMOVED_RECORDS, removals, None)


@pytest.fixture
def store(tmp_path: Path) -> DeltaStore:
    """Three conversations and what they join to, then a feedback build's state note.

    c1: customer k1, agent u1, team t1, tag g1, brand b1; its message m1 was sent by u2.
    c2: customer k2, agent u2, team t2, tag g2, brand b2; a note n2.
    c3: customer k3, nobody assigned; its message m3 names customer k1 (a copy that differs
    from its conversation's), and a CSAT response s3.
    """
    lake = DeltaStore(str(tmp_path / "delta"))
    put(
        lake,
        CONVERSATIONS,
        [
            conversation("c1", "k1", ["u1"], ["t1"], ["g1"], "b1"),
            conversation("c2", "k2", ["u2"], ["t2"], ["g2"], "b2"),
            conversation("c3", "k3", [], [], [], None),
        ],
    )
    put(
        lake,
        MESSAGES,
        [
            {"id": "m1", "updated_at": at(2), "conversation_id": "c1", "sent_by_user_id": "u2"},
            {"id": "m3", "updated_at": at(2), "conversation_id": "c3", "customer_id": "k1"},
        ],
    )
    put(lake, NOTES, [{"id": "n2", "updated_at": at(2), "conversation_id": "c2"}])
    put(lake, SATISFACTION, [{"id": "s3", "updated_at": at(2), "conversation_id": "c3"}])
    put(lake, CUSTOMERS, [record(k) for k in ("k1", "k2", "k3")])
    put(lake, USERS, [record(u) for u in ("u1", "u2")])
    for spec, ids in ((TEAMS, ("t1", "t2")), (TAGS, ("g1", "g2")), (BRANDS, ("b1", "b2"))):
        put(lake, spec, [record(i) for i in ids])
    remove(lake)  # an empty removals table, as after a reconciliation that found nothing
    write_full(lake, FEEDBACK, feedback_rows("c1", "c2", "c3"), input_versions(lake))
    return lake


def conversation(
    cid: str, customer: str, users: list, teams: list, tags: list, brand: str | None
) -> dict:
    return {
        "id": cid,
        "updated_at": at(1),
        "customer_id": customer,
        "assigned_user_ids": users,
        "assigned_team_ids": teams,
        "tag_ids": tags,
        "brand_id": brand,
    }


def record(record_id: str, hour: int = 1) -> dict:
    return {"id": record_id, "updated_at": at(hour)}


def feedback_rows(*ids: str, version: int = 1) -> pl.DataFrame:
    """Stand-in feedback rows: the key, the partition column, a version marker."""
    return pl.DataFrame(
        {
            "conversation_id": list(ids),
            CREATED_WEEK: [DAY - timedelta(days=DAY.weekday())] * len(ids),
            "built": [version] * len(ids),
        }
    )


def changed(store: DeltaStore) -> set[str]:
    changes = find_changes(store, FEEDBACK)
    assert not changes.full, changes.reason
    return changes.conversation_ids


def test_the_inputs_are_the_spec_s_joins_to_and_from_conversations() -> None:
    direct = [MESSAGES.name, NOTES.name, SATISFACTION.name]
    indirect = [CUSTOMERS.name, USERS.name, TEAMS.name, TAGS.name, BRANDS.name]
    assert (CONVERSATIONS.name, *direct, *indirect, REMOVED_RECORDS) == INPUTS
    assert {t: link.column for t, link in incremental.DIRECT_LINKS.items()} == {
        CONVERSATIONS.name: "id",
        **dict.fromkeys(direct, "conversation_id"),
    }
    assert incremental.INDIRECT_LINKS[USERS.name] == incremental.Link("assigned_user_ids", True)
    assert {
        USERS.name: [(MESSAGES.name, Join("sent_by_user_id", USERS.name))]
    } == incremental.VIA_DIRECT_INPUTS


def test_nothing_changed_selects_nothing(store: DeltaStore) -> None:
    assert changed(store) == set()


def test_an_unchanged_rewrite_selects_nothing(store: DeltaStore) -> None:
    """A snapshot re-read every day rewrites files, not data."""
    put(store, USERS, [record("u1"), record("u2")])
    messages = store.scan(MESSAGES.name).collect().drop("partition_date").to_dicts()
    put(store, MESSAGES, messages)
    assert changed(store) == set()


def test_a_day_rewritten_without_a_record_selects_its_conversation(store: DeltaStore) -> None:
    put(store, MESSAGES, [{"id": "m1", "updated_at": at(2), "conversation_id": "c1"}])
    assert changed(store) == {"c3"}  # m3 left the table


@pytest.mark.parametrize(
    ("spec", "row", "selected"),
    [
        (CONVERSATIONS, {"id": "c2", "updated_at": at(5), "customer_id": "k2"}, {"c2"}),
        (MESSAGES, {"id": "m9", "updated_at": at(5), "conversation_id": "c3"}, {"c3"}),
        (NOTES, {"id": "n2", "updated_at": at(5), "conversation_id": "c2"}, {"c2"}),
        (SATISFACTION, {"id": "s3", "updated_at": at(5), "conversation_id": "c3"}, {"c3"}),
    ],
)
def test_a_direct_input_selects_the_conversation_it_names(
    store: DeltaStore, spec: EntitySpec, row: dict, selected: set[str]
) -> None:
    put(store, spec, [row], day=DAY + timedelta(days=1))
    assert changed(store) == selected


@pytest.mark.parametrize(
    ("spec", "record_id", "selected"),
    [
        (CUSTOMERS, "k1", {"c1"}),  # not c3, whose message merely copies k1
        (CUSTOMERS, "k3", {"c3"}),
        (USERS, "u1", {"c1"}),  # assigned
        (USERS, "u2", {"c1", "c2"}),  # assigned to c2, sent c1's message m1
        (TEAMS, "t2", {"c2"}),
        (TAGS, "g1", {"c1"}),
        (BRANDS, "b2", {"c2"}),
    ],
)
def test_an_indirect_input_selects_the_conversations_pointing_at_it(
    store: DeltaStore, spec: EntitySpec, record_id: str, selected: set[str]
) -> None:
    put(store, spec, [record(record_id, hour=5)], day=DAY + timedelta(days=1))
    assert changed(store) == selected


def test_a_removal_selects_what_the_removed_record_belongs_to(store: DeltaStore) -> None:
    remove(store, (MESSAGES, "m1", None), (NOTES, "n2", None), (CUSTOMERS, "k3", None))
    assert changed(store) == {"c1", "c2", "c3"}


def test_a_survivor_s_change_selects_the_conversations_of_those_merged_into_it(
    store: DeltaStore,
) -> None:
    remove(store, (CUSTOMERS, "k2", "k1"))
    assert changed(store) == {"c2"}  # the merged customer's conversation shows the survivor
    write_full(store, FEEDBACK, feedback_rows("c1", "c2", "c3"), input_versions(store))
    put(store, CUSTOMERS, [record("k1", hour=6)], day=DAY + timedelta(days=1))
    assert changed(store) == {"c1", "c2"}


def test_an_entity_joined_to_conversations_is_an_input_without_an_edit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = replace(NOTES, name="calls", joins=(Join("conversation_id", CONVERSATIONS.name),))
    monkeypatch.setattr(incremental, "ENTITIES", (*ENTITIES, calls))
    assert incremental._direct_links()["calls"] == incremental.Link("conversation_id")


def test_no_build_yet_means_a_full_rebuild(tmp_path: Path) -> None:
    lake = DeltaStore(str(tmp_path))
    put(lake, CONVERSATIONS, [conversation("c1", "k1", [], [], [], None)])
    changes = find_changes(lake, FEEDBACK)
    assert changes.full and changes.reason == "no earlier build"
    assert changes.input_versions == {CONVERSATIONS.name: lake.version(CONVERSATIONS.name)}


def test_merging_changes_upserts_and_removes_in_one_commit_with_the_state(
    store: DeltaStore,
) -> None:
    before = store.version(FEEDBACK)
    put(store, CONVERSATIONS, [{"id": "c1", "updated_at": at(5)}], day=DAY + timedelta(days=1))
    versions = input_versions(store)
    rows = feedback_rows("c1", version=2).with_columns(pl.lit("new").alias("extra"))
    removed = merge_changes(store, FEEDBACK, rows, {"c1", "c2"}, versions)
    assert removed == 1
    assert store.version(FEEDBACK) == before + 1
    assert last_build_state(store, FEEDBACK) == versions
    table = store.scan(FEEDBACK).collect().sort("conversation_id")
    assert table.select("conversation_id", "built", "extra").rows() == [
        ("c1", 2, "new"),
        ("c3", 1, None),
    ]
    assert changed(store) == set()


def test_an_unreadable_old_version_means_a_full_rebuild(store: DeltaStore) -> None:
    state = last_build_state(store, FEEDBACK)
    assert state is not None
    write_full(
        store, FEEDBACK, feedback_rows("c1"), {**state, CONVERSATIONS.name: 999}
    )  # a note naming a version that does not exist
    changes = find_changes(store, FEEDBACK)
    assert changes.full and CONVERSATIONS.name in changes.reason
