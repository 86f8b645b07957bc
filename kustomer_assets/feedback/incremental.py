"""Which conversations changed since the last feedback build, and merging just those.

State: each feedback commit carries, in its Delta commit note, the version of every input
table it was built from. The next build compares each input's files at that version with its
files now. Rows in files that appeared or disappeared are the changes -- but only where their
(id, updated_at) is not on both sides, because a partition rewritten with the same records
(a rerun, a snapshot list re-read every day) changes files, not data. This is exact for
backfills of old days too: they add and remove files like any other write.

`removed_records` is one more input: a record marked (or un-marked) there rebuilds the
conversations it belongs to, and a customer marked as merged also rebuilds the conversations
of the customers merged into it when its profile changes, since they show that profile.

Why the table's own commit history and not a side file: the state then moves atomically with
the data it describes; a build that dies before committing leaves the previous state in place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl
from deltalake import CommitProperties, DeltaTable, write_deltalake

from kustomer_assets.lake import DeltaStore
from kustomer_assets.lake.partitions import create_table_once
from kustomer_assets.removals import REMOVED_RECORDS

NOTE_INPUTS = "kustomer_assets.feedback_inputs"

DIRECT_LINKS = {
    "conversations": "id",
    "messages": "conversation_id",
    "notes": "conversation_id",
    "satisfaction": "conversation_id",
}
"""Inputs whose changed rows name the conversation directly."""

INDIRECT_LINKS = {
    "customers": ("customer_id", False),
    "users": ("assigned_user_ids", True),
    "teams": ("assigned_team_ids", True),
    "tags": ("tag_ids", True),
    "brands": ("brand_id", False),
}
"""Inputs whose changed ids are found on conversations: (conversation column, is a list)."""

INPUTS = (*DIRECT_LINKS, *INDIRECT_LINKS, REMOVED_RECORDS)

ROW_KEYS = {REMOVED_RECORDS: ("entity", "id", "merged_into_id")}
"""What identifies one row's data, where it is not a record version `(id, updated_at)`: a
removal is the same while its entity, id and survivor are (its timestamps do not reach
feedback)."""


@dataclass
class ChangeSet:
    """Conversations to rebuild, or `full` with the reason a full rebuild is needed."""

    conversation_ids: set[str] = field(default_factory=set)
    full: bool = False
    reason: str = ""
    input_versions: dict[str, int] = field(default_factory=dict)


def input_versions(store: DeltaStore) -> dict[str, int]:
    return {
        table: DeltaTable(store.uri(table), storage_options=store.storage_options).version()
        for table in INPUTS
        if store.exists(table)
    }


def last_build_state(store: DeltaStore, table: str) -> dict[str, int] | None:
    if not store.exists(table):
        return None
    history = DeltaTable(store.uri(table), storage_options=store.storage_options).history(50)
    for entry in history:
        if NOTE_INPUTS in entry:
            return {k: int(v) for k, v in json.loads(entry[NOTE_INPUTS]).items()}
    return None


def find_changes(store: DeltaStore, feedback_table: str) -> ChangeSet:
    now = input_versions(store)
    built_from = last_build_state(store, feedback_table)
    if built_from is None:
        return ChangeSet(full=True, reason="no earlier build", input_versions=now)
    changes = ChangeSet(input_versions=now)
    for table, version in now.items():
        rows = changed_rows(store, table, built_from.get(table), version)
        if rows is None:
            return ChangeSet(
                full=True,
                reason=f"{table}: version {built_from.get(table)} can no longer be read",
                input_versions=now,
            )
        if rows.is_empty():
            continue
        changes.conversation_ids |= conversations_touched(store, table, rows)
    return changes


def _read_files(files: Iterable[str], columns: list[str]) -> pl.DataFrame | None:
    files = list(files)
    if not files:
        return pl.DataFrame()
    local = [f.removeprefix("file://") for f in files]
    if any("://" not in f and not os.path.exists(f) for f in local):
        return None  # vacuumed: the old side of the comparison is gone
    # A custom attribute that appears mid-history is a column some files lack: only the key
    # columns are read, so the rest of each file's schema must not have to agree.
    return (
        pl.scan_parquet(
            files, hive_partitioning=False, extra_columns="ignore", missing_columns="insert"
        )
        .select(columns)
        .collect()
    )


def changed_rows(
    store: DeltaStore, table: str, old_version: int | None, new_version: int
) -> pl.DataFrame | None:
    """Rows whose (id, updated_at) appears on one side only; None when it cannot be told."""
    uri, options = store.uri(table), store.storage_options
    new_files = set(DeltaTable(uri, version=new_version, storage_options=options).file_uris())
    old_files: set[str] = set()
    if old_version is not None:
        if old_version == new_version:
            return pl.DataFrame()
        try:
            old_files = set(
                DeltaTable(uri, version=old_version, storage_options=options).file_uris()
            )
        except Exception:  # the log entry was cleaned up
            return None
    link = DIRECT_LINKS.get(table, "id")
    key = list(ROW_KEYS.get(table, ("id", "updated_at")))
    columns = sorted({*key, link} | ({"sent_by_user_id"} if table == "messages" else set()))
    added = _read_files(new_files - old_files, columns)
    removed = _read_files(old_files - new_files, columns)
    if added is None or removed is None:
        return None
    if added.is_empty() or removed.is_empty():
        return added if removed.is_empty() else removed
    return pl.concat(
        [
            added.join(removed, on=key, how="anti", nulls_equal=True),
            removed.join(added, on=key, how="anti", nulls_equal=True),
        ],
        how="diagonal_relaxed",
    )


def conversations_touched(store: DeltaStore, table: str, rows: pl.DataFrame) -> set[str]:
    if table == REMOVED_RECORDS:
        return _conversations_of_removals(store, rows)
    if table in DIRECT_LINKS:
        return set(rows[DIRECT_LINKS[table]].drop_nulls().to_list())
    column, is_list = INDIRECT_LINKS[table]
    ids = rows["id"].drop_nulls().unique().to_list()
    if table == "customers" and store.exists(REMOVED_RECORDS):
        # Conversations of customers merged into a changed one show its profile.
        merged = store.scan(REMOVED_RECORDS).filter(
            (pl.col("entity") == "customers") & pl.col("merged_into_id").is_in(ids)
        )
        ids += merged.select("id").collect()["id"].to_list()
    if not store.exists("conversations"):
        return set()
    match = (
        pl.col(column).list.eval(pl.element().is_in(ids)).list.any()
        if is_list
        else (pl.col(column).is_in(ids))
    )
    touched = set(store.scan("conversations").filter(match).select("id").collect()["id"].to_list())
    if table == "users" and store.exists("messages"):
        # Agents' names are the transcript's speakers too.
        senders = store.scan("messages").filter(pl.col("sent_by_user_id").is_in(ids))
        touched |= set(senders.select("conversation_id").collect()["conversation_id"].to_list())
    return touched


def _conversations_of_removals(store: DeltaStore, rows: pl.DataFrame) -> set[str]:
    """Conversations a changed removal reaches: the conversation itself, the conversation of a
    message or note, the conversations of a customer (any version of ours pointed at them)."""
    touched: set[str] = set()
    for (entity,), removals in rows.group_by("entity"):
        ids = removals["id"].drop_nulls().unique().to_list()
        link = DIRECT_LINKS.get(str(entity))
        if link == "id":
            touched |= set(ids)
        elif link is not None and store.exists(str(entity)):
            children = store.scan(str(entity)).filter(pl.col("id").is_in(ids))
            touched |= set(children.select(link).collect()[link].drop_nulls().to_list())
        elif entity in INDIRECT_LINKS:
            touched |= conversations_touched(store, str(entity), removals.select("id"))
    return touched


def note_for(versions: dict[str, int]) -> dict[str, str]:
    return {NOTE_INPUTS: json.dumps(versions, sort_keys=True)}


def write_full(store: DeltaStore, table: str, rows: pl.DataFrame, versions: dict[str, int]) -> None:
    """Replace the whole feedback table (first build, or when changes cannot be told).

    Two first builds at once (an automation tick beside a manual build) both found no table
    and doubled rows; creating it once first gives the second a table to conflict with."""
    arrow = rows.to_arrow()
    create_table_once(store.uri(table), arrow.schema, None, store.storage_options)
    write_deltalake(
        store.uri(table),
        arrow,
        mode="overwrite",
        schema_mode="overwrite",
        storage_options=store.storage_options,
        commit_properties=CommitProperties(custom_metadata=note_for(versions)),
    )


def merge_changes(
    store: DeltaStore,
    table: str,
    rows: pl.DataFrame,
    rebuilt: set[str],
    versions: dict[str, int],
) -> int:
    """Upsert the rebuilt conversations and drop those no longer live; returns rows removed.

    The state note goes on the last commit, so a build that dies halfway is redone in full
    from the earlier state next time."""
    target = DeltaTable(store.uri(table), storage_options=store.storage_options)
    live = set(rows["conversation_id"].to_list()) if "conversation_id" in rows.columns else set()
    gone = sorted(rebuilt - live)
    note = CommitProperties(custom_metadata=note_for(versions))
    removed = 0
    if gone:
        quoted = ", ".join(f"'{conversation_id}'" for conversation_id in gone)
        result = target.delete(
            predicate=f"conversation_id IN ({quoted})",
            commit_properties=None if not rows.is_empty() else note,
        )
        removed = int(result.get("num_deleted_rows", 0))
    if not rows.is_empty():
        (
            target.merge(
                rows.to_arrow(),
                predicate="t.conversation_id = s.conversation_id",
                source_alias="s",
                target_alias="t",
                merge_schema=True,
                commit_properties=note,
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
    return removed
