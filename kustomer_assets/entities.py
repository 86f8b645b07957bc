"""The table of Kustomer entities this project lands, one spec per entity.

A spec says where an entity comes from (a search context or a list endpoint), which API role
unlocks it, and how its attributes become columns. The asset factory turns each spec into a
daily-partitioned asset, so adding an entity is one entry here, not a new module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from kustomer_assets.kustomer.roles import (
    ROLE_CONVERSATION_READ,
    ROLE_CUSTOMER_READ,
)
from kustomer_assets.records import (
    ID_LIST,
    TEXT_LIST,
    TIMESTAMP,
    Column,
    RecordMapper,
    attr,
    mapped_attribute_names,
    rel,
)


@dataclass(frozen=True)
class SearchSource:
    """Fetched through `POST /v1/customers/search` over `[start, end)` windows on updatedAt."""

    query_context: str


@dataclass(frozen=True)
class ListSource:
    """A small list endpoint read whole once per run, then split by updatedAt day."""

    path: str
    page_size: int = 100


Source = SearchSource | ListSource


@dataclass(frozen=True)
class EntitySpec:
    name: str
    kustomer_type: str
    source: Source
    role: str
    required: bool
    description: str
    columns: tuple[Column, ...]
    keep_custom: bool = True
    mapper: RecordMapper = field(init=False)

    def __post_init__(self) -> None:
        mapper = RecordMapper(
            columns=self.columns,
            keep_custom=self.keep_custom,
            mapped_attributes=mapped_attribute_names(self.columns),
        )
        object.__setattr__(self, "mapper", mapper)


def _identity(kind: str) -> tuple[Column, ...]:
    """Columns every entity has; `id` + `updated_at` is the row key of every table."""
    return (
        Column("id", ("id",), pl.Utf8, f"Kustomer {kind} id (24-hex)."),
        attr("updated_at", "updatedAt", TIMESTAMP, "When Kustomer last changed the record (UTC)."),
        attr("created_at", "createdAt", TIMESTAMP, "When the record was created (UTC)."),
        attr("modified_at", "modifiedAt", TIMESTAMP, "Last change by a person, not automation."),
    )


CONVERSATIONS = EntitySpec(
    name="conversations",
    kustomer_type="conversation",
    source=SearchSource("conversation"),
    role=ROLE_CONVERSATION_READ,
    required=True,
    description=(
        "Every Kustomer conversation (a support case across channels), one row per version: "
        "partition D holds the conversations whose last update fell on UTC day D. Take the "
        "latest `updated_at` per `id` for the current state. Custom conversation attributes "
        "appear as typed `custom_*` columns."
    ),
    columns=(
        *_identity("conversation"),
        attr("name", "name", pl.Utf8, "Subject line shown in the Kustomer timeline."),
        attr("status", "status", pl.Utf8, "open, snoozed or done."),
        attr("priority", "priority", pl.Int64, "Priority 1 (lowest) to 5 (urgent)."),
        attr("direction", "direction", pl.Utf8, "in: started by the customer; out: by an agent."),
        attr("channels", "channels", TEXT_LIST, "Channels used (email, chat, sms ...)."),
        attr("preview", "preview", pl.Utf8, "Snippet of the latest message."),
        attr("message_count", "messageCount", pl.Int64, "Messages in the conversation."),
        attr(
            "outbound_message_count", "outboundMessageCount", pl.Int64, "Messages sent by agents."
        ),
        attr("note_count", "noteCount", pl.Int64, "Internal notes on the conversation."),
        attr("satisfaction_score", "satisfaction", pl.Float64, "CSAT score; 0 when unrated."),
        attr("satisfaction_rating", "satisfactionLevel.rating", pl.Float64, "CSAT rating given."),
        attr("satisfaction_status", "satisfactionLevel.status", pl.Utf8, "CSAT survey status."),
        attr("satisfaction_channel", "satisfactionLevel.channel", pl.Utf8, "CSAT survey channel."),
        attr(
            "satisfaction_response_id",
            "satisfactionLevel.formResponse",
            pl.Utf8,
            "Id of the CSAT response holding the free-text answers.",
        ),
        attr("tag_ids", "tags", ID_LIST, "Ids of the tags on the conversation."),
        attr("assigned_user_ids", "assignedUsers", ID_LIST, "Agents assigned (user ids)."),
        attr("assigned_team_ids", "assignedTeams", ID_LIST, "Teams assigned (team ids)."),
        attr("queue_id", "queue.id", pl.Utf8, "Routing queue id."),
        attr("first_response_at", "firstResponse.createdAt", TIMESTAMP, "First agent reply."),
        attr("first_response_time", "firstResponse.time", pl.Int64, "Time to first reply (ms)."),
        attr(
            "first_response_business_time",
            "firstResponse.businessTime",
            pl.Int64,
            "Time to first reply within business hours (ms).",
        ),
        attr("first_done_at", "firstDone.createdAt", TIMESTAMP, "When first marked done."),
        attr("last_done_at", "lastDone.createdAt", TIMESTAMP, "When last marked done."),
        attr("last_message_at", "lastMessageAt", TIMESTAMP, "Latest message in either direction."),
        attr("last_activity_at", "lastActivityAt", TIMESTAMP, "Latest activity of any kind."),
        attr("reopen_count", "reopenCount", pl.Int64, "Times reopened after done."),
        attr("ended", "ended", pl.Boolean, "Whether the conversation has ended."),
        attr("ended_at", "endedAt", TIMESTAMP, "When it ended."),
        attr("external_id", "externalId", pl.Utf8, "Id in the system that created it, if any."),
        attr("deleted", "deleted", pl.Boolean, "Soft-deleted in Kustomer."),
        attr("rev", "rev", pl.Int64, "Kustomer's revision counter."),
        rel("customer_id", "customer", "The customer the conversation is with."),
        rel("brand_id", "brand", "Brand the conversation belongs to."),
        rel("created_by_user_id", "createdBy", "User (agent or bot) that created it."),
        rel("modified_by_user_id", "modifiedBy", "User that last modified it."),
    ),
)

CUSTOMERS = EntitySpec(
    name="customers",
    kustomer_type="customer",
    source=SearchSource("customer"),
    role=ROLE_CUSTOMER_READ,
    required=False,
    description=(
        "Kustomer customers (the people who contact support), one row per version: partition D "
        "holds customers whose last update fell on UTC day D. Take the latest `updated_at` per "
        "`id` for the current profile. Custom customer attributes appear as typed `custom_*` "
        "columns."
    ),
    columns=(
        *_identity("customer"),
        attr("name", "name", pl.Utf8, "Full name."),
        attr("display_name", "displayName", pl.Utf8, "Name shown to agents."),
        attr("first_name", "firstName", pl.Utf8, "Given name."),
        attr("last_name", "lastName", pl.Utf8, "Family name."),
        Column(
            "emails",
            ("attributes", "emails", "*", "email"),
            TEXT_LIST,
            "Email addresses, primary first.",
        ),
        Column(
            "phones",
            ("attributes", "phones", "*", "phone"),
            TEXT_LIST,
            "Phone numbers.",
        ),
        attr("locale", "locale", pl.Utf8, "Preferred locale (e.g. en_US)."),
        attr("time_zone", "timeZone", pl.Utf8, "IANA time zone."),
        attr("verified", "verified", pl.Boolean, "Identity verified."),
        attr("gender", "gender", pl.Utf8, "Gender, if recorded."),
        attr("external_id", "externalId", pl.Utf8, "Id in the company's own systems."),
        attr("signed_up_at", "signedUpAt", TIMESTAMP, "Sign-up time in the company's product."),
        attr("last_seen_at", "lastSeenAt", TIMESTAMP, "Last seen in a Kustomer channel."),
        attr("last_activity_at", "lastActivityAt", TIMESTAMP, "Latest activity of any kind."),
        attr("tag_ids", "tags", ID_LIST, "Ids of the tags on the customer."),
        attr("sentiment", "sentiment.polarity", pl.Float64, "Kustomer's sentiment polarity."),
        attr("deleted", "deleted", pl.Boolean, "Soft-deleted in Kustomer."),
        attr("rev", "rev", pl.Int64, "Kustomer's revision counter."),
    ),
)

ENTITIES: tuple[EntitySpec, ...] = (CONVERSATIONS, CUSTOMERS)
ENTITIES_BY_NAME = {spec.name: spec for spec in ENTITIES}
