"""The feedback table's name and what its columns mean, for the analyst reading the Dagster UI:
the documented columns before the first build, the written schema (real types, every custom
column) after."""

from __future__ import annotations

import dagster as dg
import polars as pl

from kustomer_assets.entities import CONVERSATIONS, CUSTOMERS

FEEDBACK = "feedback"

CREATED_MONTH = "created_month"
"""The first day of the UTC month the conversation was created in: a column for monthly
reports. Older versions partitioned feedback by it; `CREATED_WEEK` is the partition column."""

CREATED_WEEK = "created_week"
"""Feedback's partition column: the Monday starting the UTC (ISO) week the conversation was
created in.

Why by creation time: a refresh rebuilds the conversations that changed since the last one,
which are overwhelmingly recent ones, and a partition is rewritten whole when one of its rows
changes (copy-on-write); partitioned by creation time, a refresh rewrites the latest
partition, not the table.

Why weeks (measured on the benchmark's feedback, 100k conversations over 180 days, see
`benchmarks/feedback_vs_duckdb.py`): by month the latest partition is a seventh of the table,
and rewriting it took 40% of a refresh of the latest 1% (delta-rs' merge: 0.17 s; by week
0.11 s, and 0.06 s with the rewrite `merge_changes` does now). Days bought nothing more: the
latest 1% spans two or three days, so as many rows are rewritten, while the merge paid per
partition (0.19 s), finding the rows' partitions reads 181 files instead of 27, and analysts'
aggregates read 5-6x slower from the small files. Over three years weeks are some 160
partitions of a few thousand conversations or more each, days 1,100. A full write takes about
as long by week as by month."""


def created_month(created_at: pl.Expr) -> pl.Expr:
    """`CREATED_MONTH` of a UTC `created_at`: null when the creation time is unknown."""
    return created_at.dt.truncate("1mo").dt.date()


def created_week(created_at: pl.Expr) -> pl.Expr:
    """`CREATED_WEEK` of a UTC `created_at` (polars' `1w` truncates to Monday 00:00): null when
    the creation time is unknown (delta-rs keeps those rows in the null partition)."""
    return created_at.dt.truncate("1w").dt.date()


DESCRIPTIONS = {
    "conversation_id": "Kustomer conversation id; one row each.",
    "created_at": "When the conversation started (UTC).",
    CREATED_MONTH: (
        "Month the conversation was created (UTC), as the month's first day; null when Kustomer "
        "gave no creation time. For monthly reports."
    ),
    CREATED_WEEK: (
        "Week the conversation was created (UTC), as the Monday it starts on (ISO weeks); null "
        "when Kustomer gave no creation time. The table is partitioned by it, so filter on it "
        "to read less (a month's rows are in the weeks from the Monday on or before its first "
        "day)."
    ),
    "updated_at": "Last change to the conversation in Kustomer (UTC).",
    "first_response_at": "First agent reply (UTC).",
    "first_done_at": "When first marked done (UTC).",
    "last_done_at": "When last marked done (UTC).",
    "status": "open, snoozed or done.",
    "channels": "Channels used (email, chat, sms ...).",
    "direction": "in: started by the customer; out: by an agent.",
    "priority": "Priority 1 (lowest) to 5 (urgent).",
    "subject": "Conversation name / subject line.",
    "customer_id": "Kustomer customer id (the survivor when that customer was merged).",
    "customer_name": "Customer's full name.",
    "customer_email": "Customer's first email address.",
    "customer_locale": "Customer's locale.",
    "customer_external_id": "Customer id in the company's own systems.",
    "customer_verified": "Customer identity verified.",
    "customer_time_zone": "Customer's time zone.",
    "brand_name": "Brand the conversation belongs to.",
    "tag_names": "Tag names, in the conversation's order.",
    "assigned_team_names": "Teams assigned.",
    "assigned_agent_name": "First assigned agent's name.",
    "assigned_agent_email": "First assigned agent's email.",
    "message_count_in": "Messages from the customer.",
    "message_count_out": "Messages from agents.",
    "first_inbound_message_text": "Text of the customer's first message (Kustomer preview).",
    "transcript": "Messages in order: sent_at, direction, speaker (customer or agent name), text.",
    "transcript_text": "The transcript as 'speaker: text' lines, for full-text search.",
    "internal_notes_text": "Internal notes (not seen by the customer), oldest first.",
    "first_response_minutes": (
        "Minutes from the conversation's start to the first agent reply (Kustomer's "
        "firstResponse.time)."
    ),
    "first_response_business_minutes": (
        "The same within the org's business hours (firstResponse.businessTime), where Kustomer "
        "computes it."
    ),
    "resolution_minutes": (
        "Minutes from the start to when it was last marked done (lastDone); null while open."
    ),
    "reopen_count": "Times the conversation was reopened after being done.",
    "ended_reason": "Why it ended, as Kustomer records it.",
    "last_message_at": "When the latest message was sent (from the messages table).",
    "last_message_direction": "in (the customer wrote last) or out (an agent did).",
    "customer_text": (
        "Only what the customer wrote: the inbound messages' text in order, one per line, "
        "ready for sentiment or topic models (Kustomer's preview of each message)."
    ),
    "csat_score": "CSAT score Kustomer keeps on the conversation; null when unrated (never 0).",
    "csat_rating": "CSAT rating the customer gave.",
    "csat_comment": "CSAT free-text comment.",
}


def column_descriptions() -> dg.TableSchema:
    """The documented columns, for the Dagster UI before the first build; once built, the
    materialization carries `written_schema` (real types, every custom column)."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name, description=text) for name, text in DESCRIPTIONS.items()]
        + [
            dg.TableColumn(
                "conversation_custom_* / customer_custom_*",
                description="Every custom attribute, typed by its Kustomer suffix.",
            )
        ]
    )


def written_schema(schema: pl.Schema) -> dg.TableSchema:
    """The table as written: every column with its polars type and what it holds."""

    def describe(name: str) -> str:
        if name in DESCRIPTIONS:
            return DESCRIPTIONS[name]
        for prefix, owner in (
            (f"{CONVERSATIONS.kustomer_type}_custom_", CONVERSATIONS.kustomer_type),
            (f"{CUSTOMERS.kustomer_type}_custom_", CUSTOMERS.kustomer_type),
        ):
            if name.startswith(prefix):
                return (
                    f"The {owner}'s custom attribute `{name.removeprefix(owner + '_')}`, typed by "
                    "its Kustomer suffix."
                )
        return ""

    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, type=str(dtype), description=describe(name))
            for name, dtype in schema.items()
        ]
    )
