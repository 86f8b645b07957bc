"""Which conversations changed since the last feedback build, and merging just those.

State: each feedback commit carries, in its Delta commit note, the version of every input
table it was built from. The next build compares each input's files at that version with its
files now. Rows in files that appeared or disappeared are the changes -- but only where their
(id, updated_at) is not on both sides, because a partition rewritten with the same records
(a rerun, a snapshot list re-read every day) changes files, not data. This is exact for
backfills of old days too: they add and remove files like any other write.

The inputs come from the spec table, so a new entity joined to conversations is an input
without an edit here:

* direct inputs name the conversation: conversations themselves (`id`) and every entity with
  a join to conversations (a message's `conversation_id`);
* indirect inputs are what conversations join to (customers, agents, teams ...): a changed
  record rebuilds the conversations pointing at it, and those whose direct inputs point at
  it under a column of their own (an agent's name is also a transcript's speaker, through
  `messages.sent_by_user_id`). A child's column named like the conversation's own join
  (`messages.customer_id`) is its copy of the conversation's reference, already followed.

`removed_records` is one more input: a record marked (or un-marked) there rebuilds the
conversations it belongs to, and a record marked as merged also rebuilds the conversations
of the records merged into it when its own changes, since they show it (a merged customer's
conversations show the survivor's profile).

Why the table's own commit history and not a side file: the state then moves atomically with
the data it describes; a build that dies before committing leaves the previous state in place.

Layout: feedback is partitioned by `CREATED_WEEK`, so that a merge (copy-on-write, see
`tables.upsert_rows`) rewrites only the weeks of the conversations it rebuilds or removes,
which are mostly the latest (why weeks: see `CREATED_WEEK`). A feedback table laid out
otherwise (written unpartitioned, or by creation month, by an older version) is rebuilt in
full once, never merged into.

A refresh runs on `DeltaStore.pinned()`: each table is opened once (an open replays its log,
some milliseconds a table, and find, build and merge each opened every input again) and read
at that version throughout, so the rows built are exactly those of the versions the commit
note records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl

from kustomer_assets.entities import CONVERSATIONS, ENTITIES, EntitySpec, Join
from kustomer_assets.feedback.columns import CREATED_WEEK
from kustomer_assets.lake import DeltaStore
from kustomer_assets.lake.versions import VersionGone
from kustomer_assets.removals import REMOVED_RECORDS

NOTE_INPUTS = "kustomer_assets.feedback_inputs"

HUB: EntitySpec = CONVERSATIONS
"""The entity feedback has one row per record of."""

CONVERSATION_KEY = "conversation_id"
"""Feedback's key: the conversation each row is."""

LAYOUT = [CREATED_WEEK]
"""Feedback's partition columns."""


@dataclass(frozen=True)
class Link:
    """How a changed row of an input reaches conversations: through `column` (a list of ids
    when `many`), naming a conversation for a direct input, a record of the input for an
    indirect one."""

    column: str
    many: bool = False


def _direct_links() -> dict[str, Link]:
    links = {HUB.name: Link("id")}
    for spec in ENTITIES:
        join = spec.join_to(HUB.name)
        if join is not None and spec.name not in links:
            links[spec.name] = Link(join.column, join.many)
    return links


DIRECT_LINKS: dict[str, Link] = _direct_links()
"""Inputs whose changed rows name the conversation directly (conversations: `id`)."""

INDIRECT_LINKS: dict[str, Link] = {j.target: Link(j.column, j.many) for j in HUB.joins}
"""Inputs whose changed ids are found on conversations, by the conversations' join column."""


def _via_direct_inputs() -> dict[str, list[tuple[str, Join]]]:
    hub_columns = {j.column for j in HUB.joins}
    via: dict[str, list[tuple[str, Join]]] = {}
    for spec in ENTITIES:
        if spec.name == HUB.name or spec.name not in DIRECT_LINKS:
            continue
        for join in spec.joins:
            if join.target in INDIRECT_LINKS and join.column not in hub_columns:
                via.setdefault(join.target, []).append((spec.name, join))
    return via


VIA_DIRECT_INPUTS: dict[str, list[tuple[str, Join]]] = _via_direct_inputs()
"""Indirect input -> (direct input, its join to it): other ways its records reach
conversations (an agent who sent a message speaks in that conversation's transcript)."""

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
    return {table: store.version(table) for table in INPUTS if store.exists(table)}


def last_build_state(store: DeltaStore, table: str) -> dict[str, int] | None:
    note = store.latest_note(table, NOTE_INPUTS, limit=50)
    return None if note is None else {k: int(v) for k, v in json.loads(note).items()}


def layout_problem(store: DeltaStore, table: str) -> str | None:
    """Why the existing feedback `table` cannot be merged into (laid out other than `LAYOUT`,
    as older versions wrote it: unpartitioned, then by `CREATED_MONTH`); None when it can, or
    does not exist."""
    if not store.exists(table):
        return None
    found = store.partition_columns(table)
    if found == LAYOUT:
        return None
    laid_out = "unpartitioned" if not found else f"partitioned by {', '.join(found)}"
    return (
        f"the table is {laid_out}, as an older version wrote it; rebuilding it once, "
        f"partitioned by {', '.join(LAYOUT)}"
    )


def find_changes(store: DeltaStore, feedback_table: str) -> ChangeSet:
    store.prefetch([*INPUTS, feedback_table])  # a pinned store opens them all at once
    now = input_versions(store)
    relayout = layout_problem(store, feedback_table)
    if relayout is not None:
        return ChangeSet(full=True, reason=relayout, input_versions=now)
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


def changed_rows(
    store: DeltaStore, table: str, old_version: int | None, new_version: int
) -> pl.DataFrame | None:
    """Rows whose (id, updated_at) appears on one side only; None when it cannot be told."""
    if old_version == new_version:
        return pl.DataFrame()  # before listing any files: most inputs did not change
    new_files = store.files_at(table, new_version)
    old_files: set[str] = set()
    if old_version is not None:
        try:
            old_files = store.files_at(table, old_version)
        except VersionGone:  # the log entry was cleaned up
            return None
    key = list(ROW_KEYS.get(table, ("id", "updated_at")))
    columns = sorted({*key, DIRECT_LINKS.get(table, Link("id")).column})
    added = store.read_files(new_files - old_files, columns)
    removed = store.read_files(old_files - new_files, columns)
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


def _ids(rows: pl.DataFrame, link: Link) -> set[str]:
    column = rows[link.column]
    return set((column.explode() if link.many else column).drop_nulls().to_list())


def _pointing_at(link: Link, ids: list[str]) -> pl.Expr:
    """Rows whose `link` column names one of `ids`."""
    if link.many:
        return pl.col(link.column).list.eval(pl.element().is_in(ids)).list.any()
    return pl.col(link.column).is_in(ids)


def conversations_touched(store: DeltaStore, table: str, rows: pl.DataFrame) -> set[str]:
    if table == REMOVED_RECORDS:
        return _conversations_of_removals(store, rows)
    if table in DIRECT_LINKS:
        return _ids(rows, DIRECT_LINKS[table])
    ids = rows["id"].drop_nulls().unique().to_list()
    if store.exists(REMOVED_RECORDS):
        # Conversations of records merged into a changed one show it.
        merged = store.scan(REMOVED_RECORDS).filter(
            (pl.col("entity") == table) & pl.col("merged_into_id").is_in(ids)
        )
        ids += merged.select("id").collect()["id"].to_list()
    if not store.exists(HUB.name):
        return set()
    match = _pointing_at(INDIRECT_LINKS[table], ids)
    touched = set(store.scan(HUB.name).filter(match).select("id").collect()["id"].to_list())
    for child, join in VIA_DIRECT_INPUTS.get(table, []):
        if store.exists(child):
            link = DIRECT_LINKS[child]
            found = store.scan(child).filter(_pointing_at(Link(join.column, join.many), ids))
            touched |= _ids(found.select(link.column).collect(), link)
    return touched


def _conversations_of_removals(store: DeltaStore, rows: pl.DataFrame) -> set[str]:
    """Conversations a changed removal reaches: the conversation itself, the conversation of a
    message or note, the conversations of a customer (any version of ours pointed at them)."""
    touched: set[str] = set()
    for (entity,), removals in rows.group_by("entity"):
        ids = removals["id"].drop_nulls().unique().to_list()
        link = DIRECT_LINKS.get(str(entity))
        if entity == HUB.name:
            touched |= set(ids)
        elif link is not None and store.exists(str(entity)):
            children = store.scan(str(entity)).filter(pl.col("id").is_in(ids))
            touched |= _ids(children.select(link.column).collect(), link)
        elif entity in INDIRECT_LINKS:
            touched |= conversations_touched(store, str(entity), removals.select("id"))
    return touched


def note_for(versions: dict[str, int]) -> dict[str, str]:
    return {NOTE_INPUTS: json.dumps(versions, sort_keys=True)}


def write_full(store: DeltaStore, table: str, rows: pl.DataFrame, versions: dict[str, int]) -> None:
    """Replace the whole feedback table (first build, when changes cannot be told, or to lay
    out a table an older version wrote), partitioned by `LAYOUT`, in one commit carrying the
    state note; the lake creates the table once first, so two first builds at once (an
    automation tick beside a manual build) cannot double the rows."""
    store.overwrite(table, rows, note_for(versions), partition_by=LAYOUT)


def merge_changes(
    store: DeltaStore,
    table: str,
    rows: pl.DataFrame,
    rebuilt: set[str],
    versions: dict[str, int],
) -> int:
    """Upsert the rebuilt conversations and drop those no longer live; returns rows removed.

    One commit carries both and the state note, so a build that dies halfway leaves the
    earlier state, and the next build redoes these conversations. The merge reads and
    rewrites only the weeks touched: those of the rows, and those the rebuilt or removed
    conversations sit in now (a conversation whose creation time moved leaves its old week).
    The lake refuses a table laid out otherwise (`find_changes` rebuilds it in full instead)."""
    live = set(rows[CONVERSATION_KEY].to_list()) if CONVERSATION_KEY in rows.columns else set()
    gone = rebuilt - live
    return store.upsert(
        table, rows, CONVERSATION_KEY, gone, note_for(versions), partition_by=CREATED_WEEK
    )
