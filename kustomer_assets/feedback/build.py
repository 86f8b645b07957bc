"""Raw tables' current state -> feedback rows, with lazy polars scans and no Dagster.

Each raw table keeps every version of a record; the current state is the latest `updated_at`
per id. An incremental build filters every read on the conversation ids being built first, so
a build of a few hundred conversations joins a few hundred conversations' rows, not years of
history; a full build reads every table unfiltered and leaves the rows of conversations it
does not build to its left joins (a filter by every id costs more than the join).

An incremental build also reads only the days that can hold the conversations' records. The
raw tables are partitioned by the UTC day of each record's `updated_at`, and nothing of a
conversation is updated before it was created: each of its versions is stamped at or after
the creation time it states, a message is sent in it, a note written on it, a survey answered
about it. So the days before the earliest creation day any version of the conversations built
states (less `SKEW_DAYS`, for clocks that disagree) hold none of their versions, messages,
notes or CSAT responses, and are not read. Finding that day reads two columns of the
conversations; the full read of the conversations, and those of their messages, notes and
responses, then skip the older days. For the recent conversations a refresh mostly rebuilds
that is a few days out of the whole history. The emulator generates its records that way; a
conversation of unknown creation time reads every day. Customers, agents, teams, tags and
brands are read whole: they may have been updated before any conversation named them.

Records Kustomer no longer returns (`removed_records`) are left out: a removed conversation has
no row, removed messages and notes leave its transcript and notes, a removed customer's profile
is not joined, and a conversation whose customer was merged into another shows the survivor
(its id and profile) -- what Kustomer's re-pointed version of the conversation will say once a
sync brings it, so the row does not change again when it arrives.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, timedelta

import polars as pl

from kustomer_assets.entities import (
    BRANDS,
    CONVERSATIONS,
    CUSTOMERS,
    MESSAGES,
    NOTES,
    SATISFACTION,
    TAGS,
    TEAMS,
    USERS,
)
from kustomer_assets.feedback.columns import (
    CREATED_MONTH,
    CREATED_WEEK,
    FEEDBACK,
    column_descriptions,
    created_month,
    created_week,
    written_schema,
)
from kustomer_assets.lake import PARTITION_COLUMN, DeltaStore
from kustomer_assets.removals import REMOVED_RECORDS

CONVERSATION_COLUMNS = {
    "id": "conversation_id",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "first_response_at": "first_response_at",
    "first_done_at": "first_done_at",
    "last_done_at": "last_done_at",
    "status": "status",
    "channels": "channels",
    "direction": "direction",
    "priority": "priority",
    "name": "subject",
    "customer_id": "customer_id",
    "reopen_count": "reopen_count",
    "ended_reason": "ended_reason",
}

CUSTOMER_COLUMNS = {
    "name": "customer_name",
    "email": "customer_email",
    "locale": "customer_locale",
    "external_id": "customer_external_id",
    "verified": "customer_verified",
    "time_zone": "customer_time_zone",
}

SKEW_DAYS = 1
"""Days read before the earliest creation day of the conversations built: a record stamped by
a clock a little behind the one that created its conversation still lands in a day read."""

TRANSCRIPT_ENTRY = pl.Struct(
    {"sent_at": pl.Datetime("us", "UTC"), "direction": pl.Utf8, "speaker": pl.Utf8, "text": pl.Utf8}
)


def current(
    store: DeltaStore,
    table: str,
    ids: Collection[str] | None = None,
    on: str = "id",
    since: date | None = None,
):
    """Latest version per id of `table`, limited to rows whose `on` column is in `ids`
    (None: every row, unfiltered) and, with `since`, to the daily partitions from that day on
    (the caller knows no current version of what it wants is older)."""
    if not store.exists(table):
        return None
    frame = store.scan(table)
    if since is not None:
        frame = frame.filter(pl.col(PARTITION_COLUMN) >= since)
    if ids is not None:
        wanted = pl.LazyFrame({on: list(ids)}, schema={on: frame.collect_schema()[on]})
        frame = frame.join(wanted.unique(), on=on, how="semi")
    return latest(frame)


def latest(frame: pl.LazyFrame) -> pl.LazyFrame:
    """One row per id: its latest `updated_at` (exactly one: an `ordinal` rank breaks a tie,
    should a version ever be stored twice).

    Why not a sort and `group_by("id", maintain_order=True).last()` (or `unique`): both move
    every column of the whole history; this compares two columns and filters. The rows' order
    is not part of the result: every caller orders by a key of its own."""
    newest = pl.col("updated_at").rank("ordinal", descending=True).over("id") == 1
    return frame.filter(newest)


def removed_ids(store: DeltaStore, entity: str) -> pl.LazyFrame | None:
    """Ids of `entity` that Kustomer no longer returns (deleted or merged away)."""
    if not store.exists(REMOVED_RECORDS):
        return None
    return store.scan(REMOVED_RECORDS).filter(pl.col("entity") == entity).select("id")


def _without_removed(store: DeltaStore, frame: pl.LazyFrame, entity: str) -> pl.LazyFrame:
    removed = removed_ids(store, entity)
    return frame if removed is None else frame.join(removed, on="id", how="anti")


def _surviving_customer(store: DeltaStore, frame: pl.LazyFrame) -> pl.LazyFrame:
    """`customer_id` of merged customers replaced by the customer they were merged into."""
    if not store.exists(REMOVED_RECORDS):
        return frame
    survivors = (
        store.scan(REMOVED_RECORDS)
        .filter((pl.col("entity") == CUSTOMERS.name) & pl.col("merged_into_id").is_not_null())
        .select(pl.col("id").alias("customer_id"), pl.col("merged_into_id").alias("_survivor"))
    )
    return (
        frame.join(survivors, on="customer_id", how="left")
        .with_columns(pl.coalesce("_survivor", "customer_id").alias("customer_id"))
        .drop("_survivor")
    )


def _live(frame: pl.LazyFrame) -> pl.LazyFrame:
    columns = frame.collect_schema().names()
    if "deleted" in columns:
        frame = frame.filter(~pl.col("deleted").fill_null(False))
    return frame


def _renamed_custom(frame: pl.LazyFrame, prefix: str) -> list[pl.Expr]:
    return [
        pl.col(name).alias(f"{prefix}_{name}")
        for name in frame.collect_schema().names()
        if name.startswith("custom_")
    ]


def _minutes(milliseconds: pl.Expr) -> pl.Expr:
    return (milliseconds.cast(pl.Float64) / 60_000).round(2)


def _creation_times(store: DeltaStore) -> pl.LazyFrame | None:
    """`id` and `created_at` of every stored version of every conversation."""
    if not store.exists(CONVERSATIONS.name):
        return None
    return store.scan(CONVERSATIONS.name).select("id", "created_at")


def _first_day(versions: pl.DataFrame, conversation_ids: Collection[str]) -> date | None:
    """`first_day_to_read` from `_creation_times`, read whole and filtered here, in memory: a
    semi join in the scan took twice as long (the join waits for every file)."""
    created = versions.filter(pl.col("id").is_in(list(conversation_ids))).select(
        pl.col("created_at").min().alias("first"),
        pl.col("created_at").is_null().any().alias("unknown"),
    )
    first, unknown = created.row(0)
    if first is None or unknown:
        return None
    return first.date() - timedelta(days=SKEW_DAYS)


def first_day_to_read(store: DeltaStore, conversation_ids: Collection[str]) -> date | None:
    """The first daily partition that can hold a version, message, note or CSAT response of
    `conversation_ids`: the earliest creation day any stored version of them states (a
    creation time that was ever corrected stays safe), less `SKEW_DAYS`. None (read every day)
    when a version has no creation time, or none of them is stored."""
    versions = _creation_times(store)
    return None if versions is None else _first_day(versions.collect(), conversation_ids)


def _read_ahead(
    store: DeltaStore, conversation_ids: Collection[str], lookups: dict[str, pl.LazyFrame | None]
) -> tuple[date | None, dict[str, pl.LazyFrame | None]]:
    """For an incremental build: `first_day_to_read`, and the `lookups` (the tables read
    whole: they do not depend on it), read in one `collect_all` so that polars schedules their
    files together.

    Why read whole and filter in memory: each of these reads every file of its table (a raw
    table of 180 daily partitions is some 200-300 small files, and a file costs more to open
    than its rows to read), and a semi join on the ids inside those scans made them slower,
    not faster; customers are then kept by id before their versions are ranked (see
    `_join_customers`)."""
    versions = _creation_times(store)
    present = {name: frame for name, frame in lookups.items() if frame is not None}
    frames = [*([] if versions is None else [versions]), *present.values()]
    collected = pl.collect_all(frames)
    since = None if versions is None else _first_day(collected.pop(0), conversation_ids)
    read = dict(zip(present, (frame.lazy() for frame in collected), strict=True))
    return since, {name: read.get(name) for name in lookups}


def build_feedback(store: DeltaStore, conversation_ids: Collection[str] | None) -> pl.DataFrame:
    """Feedback rows for `conversation_ids` (None: every conversation), live ones only."""
    full = conversation_ids is None
    lookups: dict[str, pl.LazyFrame | None] = {
        CUSTOMERS.name: _customer_versions(store),
        **{spec.name: current(store, spec.name) for spec in (USERS, BRANDS, TAGS, TEAMS)},
    }
    since = None
    if not full:
        since, lookups = _read_ahead(store, conversation_ids, lookups)
    conversations = current(store, CONVERSATIONS.name, conversation_ids, since=since)
    if conversations is None:
        return pl.DataFrame()
    conversations = _live(_without_removed(store, conversations, CONVERSATIONS.name))
    conversations = _surviving_customer(store, conversations)
    base = conversations.select(
        *[pl.col(src).alias(dst) for src, dst in CONVERSATION_COLUMNS.items()],
        created_month(pl.col("created_at")).alias(CREATED_MONTH),
        created_week(pl.col("created_at")).alias(CREATED_WEEK),
        pl.col("tag_ids"),
        pl.col("assigned_user_ids"),
        pl.col("assigned_team_ids"),
        pl.col("brand_id"),
        # Kustomer keeps 0 on unrated conversations: a 0 would drag every average down.
        pl.when(pl.col("satisfaction_score") != 0)
        .then(pl.col("satisfaction_score"))
        .alias("csat_score"),
        # Rounded to the hundredth of a minute: a division's last bit differs between polars'
        # engines, and an incremental build must equal a full one exactly.
        _minutes(pl.col("first_response_time")).alias("first_response_minutes"),
        _minutes(pl.col("first_response_business_time")).alias("first_response_business_minutes"),
        _minutes((pl.col("last_done_at") - pl.col("created_at")).dt.total_milliseconds()).alias(
            "resolution_minutes"
        ),
        pl.col("satisfaction_rating").alias("conversation_satisfaction_rating"),
        *_renamed_custom(conversations, CONVERSATIONS.kustomer_type),
    ).collect()
    # A full build reads every row of the other tables: the left joins below drop the rows of
    # conversations not built, and a filter by every id would cost more than the join (an
    # `is_in` pushed into the scans of 100k ids is tested file by file).
    ids = None if full else base["conversation_id"].to_list()
    customer_ids = None if full else base["customer_id"].drop_nulls().unique().to_list()
    frame = base.lazy()
    frame = _join_customers(store, frame, lookups[CUSTOMERS.name], customer_ids)
    users = lookups[USERS.name]  # agents: the assignee and the transcript's speakers
    frame = _join_names(frame, lookups, users)
    frame = _join_messages(store, frame, ids, users, since)
    frame = _join_notes(store, frame, ids, since)
    frame = _join_csat(store, frame, ids, since)
    return (
        frame.drop("tag_ids", "assigned_user_ids", "assigned_team_ids", "brand_id")
        .sort("conversation_id")
        .collect()
    )


CUSTOMER_READ = (
    "id",
    "updated_at",
    "name",
    "emails",
    "locale",
    "external_id",
    "verified",
    "time_zone",
)
"""The customers' columns a profile is made of (with every `custom_*`)."""


def _customer_versions(store: DeltaStore) -> pl.LazyFrame | None:
    """Every stored version of every customer, in the columns a profile needs."""
    if not store.exists(CUSTOMERS.name):
        return None
    customers = store.scan(CUSTOMERS.name)
    custom = [c for c in customers.collect_schema().names() if c.startswith("custom_")]
    return customers.select(*CUSTOMER_READ, *custom)


def _join_customers(
    store: DeltaStore, frame: pl.LazyFrame, versions: pl.LazyFrame | None, ids: list[str] | None
) -> pl.LazyFrame:
    """The conversations' customers' current profiles, from their `versions`; `ids` (None:
    all) the customers wanted, kept before `latest` ranks the versions: a customer's latest
    version is the same whichever others are kept, and ranking the versions of a thousand
    customers instead of every customer's took a tenth of the time."""
    if versions is None:
        return frame.with_columns(pl.lit(None, pl.Utf8).alias(c) for c in CUSTOMER_COLUMNS.values())
    if ids is not None:
        versions = versions.filter(pl.col("id").is_in(ids))
    customers = _without_removed(store, latest(versions), CUSTOMERS.name).select(
        pl.col("id").alias("customer_id"),
        pl.col("name").alias("customer_name"),
        pl.col("emails").list.first().alias("customer_email"),
        pl.col("locale").alias("customer_locale"),
        pl.col("external_id").alias("customer_external_id"),
        pl.col("verified").alias("customer_verified"),
        pl.col("time_zone").alias("customer_time_zone"),
        *_renamed_custom(versions, CUSTOMERS.kustomer_type),
    )
    return frame.join(customers, on="customer_id", how="left")


def _join_names(
    frame: pl.LazyFrame, lookups: dict[str, pl.LazyFrame | None], users: pl.LazyFrame | None
) -> pl.LazyFrame:
    """Brand name, tag names (in the conversation's tag order), first agent, team names."""
    brands, tags, teams = (lookups[spec.name] for spec in (BRANDS, TAGS, TEAMS))
    if brands is not None:
        frame = frame.join(
            brands.select(pl.col("id").alias("brand_id"), pl.col("name").alias("brand_name")),
            on="brand_id",
            how="left",
        )
    else:
        frame = frame.with_columns(pl.lit(None, pl.Utf8).alias("brand_name"))
    frame = frame.with_columns(
        _names_of(frame, tags, "tag_ids", "name", "tag_names"),
        _names_of(frame, teams, "assigned_team_ids", "name", "assigned_team_names"),
    ).pipe(lambda f: _agent(f, users))
    return frame


def _names_of(
    frame: pl.LazyFrame, lookup: pl.LazyFrame | None, ids: str, field: str, alias: str
) -> pl.Expr:
    if lookup is None:
        return pl.lit(None, pl.List(pl.Utf8)).alias(alias)
    mapping = lookup.select("id", field).collect()
    return (
        pl.col(ids)
        .list.eval(pl.element().replace_strict(mapping["id"], mapping[field], default=None))
        .alias(alias)
    )


def _agent(frame: pl.LazyFrame, users: pl.LazyFrame | None) -> pl.LazyFrame:
    frame = frame.with_columns(pl.col("assigned_user_ids").list.first().alias("_agent_id"))
    if users is None:
        return frame.with_columns(
            pl.lit(None, pl.Utf8).alias("assigned_agent_name"),
            pl.lit(None, pl.Utf8).alias("assigned_agent_email"),
        ).drop("_agent_id")
    agents = users.select(
        pl.col("id").alias("_agent_id"),
        pl.col("name").alias("assigned_agent_name"),
        pl.col("email").alias("assigned_agent_email"),
    )
    return frame.join(agents, on="_agent_id", how="left").drop("_agent_id")


def _join_messages(
    store: DeltaStore,
    frame: pl.LazyFrame,
    ids: list[str] | None,
    users: pl.LazyFrame | None,
    since: date | None,
) -> pl.LazyFrame:
    """Counts, first inbound text and the ordered transcript; speaker is the agent's name."""
    messages = current(store, MESSAGES.name, ids, on="conversation_id", since=since)
    empty = [
        pl.lit(0, pl.UInt32).alias("message_count_in"),
        pl.lit(0, pl.UInt32).alias("message_count_out"),
        pl.lit(None, pl.Utf8).alias("first_inbound_message_text"),
        pl.lit(None, pl.List(TRANSCRIPT_ENTRY)).alias("transcript"),
        pl.lit(None, pl.Utf8).alias("transcript_text"),
        pl.lit(None, pl.Utf8).alias("customer_text"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("last_message_at"),
        pl.lit(None, pl.Utf8).alias("last_message_direction"),
    ]
    if messages is None:
        return frame.with_columns(empty)
    messages = _live(_without_removed(store, messages, MESSAGES.name))
    if users is not None:
        messages = messages.join(
            users.select(pl.col("id").alias("sent_by_user_id"), pl.col("name").alias("_agent")),
            on="sent_by_user_id",
            how="left",
        )
    else:
        messages = messages.with_columns(pl.lit(None, pl.Utf8).alias("_agent"))
    speaker = (
        pl.when(pl.col("direction") == "in")
        .then(pl.lit(CUSTOMERS.kustomer_type))  # the customer's side is named by its kind
        .otherwise(pl.coalesce("_agent", pl.lit("agent")))
    )
    per_conversation = (
        messages.with_columns(
            pl.coalesce("sent_at", "created_at").alias("_at"), speaker.alias("_speaker")
        )
        .sort("conversation_id", "_at", "id")
        .group_by("conversation_id", maintain_order=True)
        .agg(
            (pl.col("direction") == "in").sum().alias("message_count_in"),
            (pl.col("direction") == "out").sum().alias("message_count_out"),
            pl.col("preview_text")
            .filter(pl.col("direction") == "in")
            .first()
            .alias("first_inbound_message_text"),
            pl.struct(
                pl.col("_at").alias("sent_at"),
                "direction",
                pl.col("_speaker").alias("speaker"),
                pl.col("preview_text").alias("text"),
            ).alias("transcript"),
            (pl.col("_speaker") + pl.lit(": ") + pl.col("preview_text").fill_null(""))
            .str.join("\n")
            .alias("transcript_text"),
            pl.col("preview_text")
            .filter((pl.col("direction") == "in") & pl.col("preview_text").is_not_null())
            .str.join("\n")
            .alias("customer_text"),
            pl.col("_at").last().alias("last_message_at"),
            pl.col("direction").last().alias("last_message_direction"),
        )
    )
    return frame.join(per_conversation, on="conversation_id", how="left").with_columns(
        pl.col("message_count_in").fill_null(0),
        pl.col("message_count_out").fill_null(0),
        pl.when(pl.col("customer_text") != "").then(pl.col("customer_text")).alias("customer_text"),
    )


def _join_notes(
    store: DeltaStore, frame: pl.LazyFrame, ids: list[str] | None, since: date | None
) -> pl.LazyFrame:
    notes = current(store, NOTES.name, ids, on="conversation_id", since=since)
    if notes is None:
        return frame.with_columns(pl.lit(None, pl.Utf8).alias("internal_notes_text"))
    per_conversation = (
        _live(_without_removed(store, notes, NOTES.name))
        .sort("conversation_id", "created_at", "id")
        .group_by("conversation_id", maintain_order=True)
        .agg(pl.col("body").drop_nulls().str.join("\n\n").alias("internal_notes_text"))
    )
    return frame.join(per_conversation, on="conversation_id", how="left")


def _join_csat(
    store: DeltaStore, frame: pl.LazyFrame, ids: list[str] | None, since: date | None
) -> pl.LazyFrame:
    """CSAT score as Kustomer keeps it on the conversation; rating and comment from the
    response when it was fetched, the rating from the conversation otherwise."""
    responses = current(store, SATISFACTION.name, ids, on="conversation_id", since=since)
    if responses is not None:
        latest = (
            responses.sort("conversation_id", "updated_at", "id")
            .group_by("conversation_id", maintain_order=True)
            .last()
            .select(
                "conversation_id",
                pl.col("rating").alias("_rating"),
                pl.col("comment").alias("csat_comment"),
            )
        )
        frame = frame.join(latest, on="conversation_id", how="left")
    else:
        frame = frame.with_columns(
            pl.lit(None, pl.Float64).alias("_rating"),
            pl.lit(None, pl.Utf8).alias("csat_comment"),
        )
    return frame.with_columns(
        pl.coalesce("_rating", "conversation_satisfaction_rating").alias("csat_rating"),
    ).drop("_rating", "conversation_satisfaction_rating")


__all__ = [
    "CREATED_MONTH",
    "CREATED_WEEK",
    "FEEDBACK",
    "build_feedback",
    "column_descriptions",
    "current",
    "first_day_to_read",
    "written_schema",
]
