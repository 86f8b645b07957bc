"""The table of Kustomer entities this project lands, one spec per entity.

A spec says where an entity comes from (a search context or a list endpoint), which API role
unlocks it, and how its attributes become columns. The asset factory turns each spec into a
daily-partitioned asset, so adding an entity is one entry here, not a new module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from kustomer_assets.kustomer import roles
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
    """A small list endpoint (agents, teams, tags ...) that cannot filter by time.

    It is read whole once per run and written as a snapshot of every day, not only the run's:
    the feedback table needs every agent's name, not only those edited in the backfilled days.
    """

    path: str
    page_size: int = 100


@dataclass(frozen=True)
class MetadataSource:
    """Custom-attribute definitions, one `GET /v1/metadata/<object>` per standard object,
    expanded to one record per attribute; a snapshot like `ListSource`."""

    objects: tuple[str, ...] = ("conversation", "customer", "message", "company")


@dataclass(frozen=True)
class ResponseByIdSource:
    """Records with no list endpoint, fetched one by one by ids found on another table
    (CSAT responses: ids on conversations whose satisfaction changed in the window)."""

    path_template: str


@dataclass(frozen=True)
class Reference:
    """Records another table points at that the window's search may not return.

    A conversation from this week can belong to a customer whose profile last changed a year
    ago; without the customer, feedback rows lose the email and name. Such records are fetched
    by id (only those the table lacks) and stored on their own `updatedAt` day.
    """

    table: str
    column: str
    path_template: str


Source = SearchSource | ListSource | MetadataSource | ResponseByIdSource
SNAPSHOT_SOURCES = (ListSource, MetadataSource)


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
    toggle: str | None = None
    """Name of a `KustomerResource` flag that switches this entity off (e.g. `ingest_messages`)."""
    reference: Reference | None = None
    by_id_path: str | None = None
    """`GET` path of one record (`{id}` is replaced), where the API has one. A reconciliation
    asks it about records search no longer lists: 404 means removed, an answer under another
    id means merged into that record, the same id means it is still there."""
    mapper: RecordMapper = field(init=False)

    @property
    def is_snapshot(self) -> bool:
        return isinstance(self.source, SNAPSHOT_SOURCES)

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
    role=roles.CONVERSATION_READ,
    required=True,
    by_id_path="/v1/conversations/{id}",
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
            "satisfaction_updated_at",
            "satisfactionLevel.updatedAt",
            TIMESTAMP,
            "When the CSAT survey or its answer last changed.",
        ),
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
        attr("ended_reason", "endedReason", pl.Utf8, "Why it ended, as Kustomer records it."),
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
    role=roles.CUSTOMER_READ,
    required=False,
    reference=Reference("conversations", "customer_id", "/v1/customers/{id}"),
    by_id_path="/v1/customers/{id}",
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


def _snapshot_identity(kind: str) -> tuple[Column, ...]:
    return _identity(kind)[:3]


def _free_text_answers(answers: object) -> str | None:
    """CSAT answers mix ratings and comments; analysts want the comments, joined in order."""
    if not isinstance(answers, list):
        return None
    texts = [
        a["answer"].strip()
        for a in answers
        if isinstance(a, dict) and isinstance(a.get("answer"), str) and a["answer"].strip()
    ]
    return "\n".join(texts) or None


MESSAGES = EntitySpec(
    name="messages",
    kustomer_type="message",
    source=SearchSource("message"),
    role=roles.MESSAGE_READ,
    required=True,
    toggle="ingest_messages",
    description=(
        "Every message of every conversation (customer and agent sides), one row per version; "
        "partition D holds messages last updated on UTC day D. `preview_text` is Kustomer's "
        "preview of the body (up to about 1,000 characters: the API exposes no fuller body). "
        "Join to conversations on `conversation_id`; order a transcript by `sent_at`."
    ),
    columns=(
        *_identity("message"),
        rel("conversation_id", "conversation", "Conversation the message belongs to."),
        rel("customer_id", "customer", "Customer of that conversation."),
        attr("direction", "direction", pl.Utf8, "in: from the customer; out: from an agent."),
        attr(
            "preview_text",
            "preview",
            pl.Utf8,
            "Message text as Kustomer's preview: up to ~1,000 characters of the body.",
        ),
        attr("channel", "channel", pl.Utf8, "email, chat, sms, voice ..."),
        attr("app", "app", pl.Utf8, "Integration that carried the message."),
        attr("status", "status", pl.Utf8, "Delivery status (sent, received, failed ...)."),
        attr("size", "size", pl.Int64, "Size in bytes, attachments included."),
        attr("sent_at", "sentAt", TIMESTAMP, "When it was sent (UTC)."),
        attr("email_subject", "meta.subject", pl.Utf8, "Email subject, for email messages."),
        attr("email_from", "meta.from", pl.Utf8, "Email sender address."),
        attr("email_to", "meta.to", TEXT_LIST, "Email recipients."),
        attr("attachments", "attachments", pl.Utf8, "Attachment descriptors as JSON."),
        attr("deleted", "deleted", pl.Boolean, "Soft-deleted in Kustomer."),
        rel("created_by_user_id", "createdBy", "User (agent or bot) that created it."),
        rel("sent_by_user_id", "sentBy", "Agent who sent it; null for customer messages."),
    ),
)

NOTES = EntitySpec(
    name="notes",
    kustomer_type="note",
    source=SearchSource("note"),
    role=roles.NOTE_READ,
    required=False,
    description=(
        "Internal notes agents left on conversations (never seen by customers), one row per "
        "version; partition D holds notes last updated on UTC day D."
    ),
    columns=(
        *_identity("note"),
        rel("conversation_id", "conversation", "Conversation the note is on."),
        rel("customer_id", "customer", "Customer of that conversation."),
        attr("body", "body", pl.Utf8, "Full text of the note."),
        rel("created_by_user_id", "createdBy", "Agent who wrote it."),
        attr("user_mention_ids", "userMentions", ID_LIST, "Agents @-mentioned."),
        attr("deleted", "deleted", pl.Boolean, "Soft-deleted in Kustomer."),
        attr("deleted_at", "deletedAt", TIMESTAMP, "When it was deleted."),
        attr("external_id", "externalId", pl.Utf8, "Id in the system that created it."),
    ),
)

SATISFACTION = EntitySpec(
    name="satisfaction",
    kustomer_type="satisfaction_response",
    source=ResponseByIdSource("/v1/satisfaction-responses/{id}"),
    role=roles.SATISFACTION_READ,
    required=False,
    toggle="fetch_csat_responses",
    description=(
        "CSAT survey responses with their free-text comments, one row per version. Kustomer has "
        "no list of responses: each is fetched by id for conversations whose satisfaction "
        "changed, so partition D holds the responses of conversations whose CSAT changed on UTC "
        "day D. Scores alone are also on `conversations` (satisfaction_*), at no extra cost."
    ),
    columns=(
        *_identity("CSAT response"),
        rel("conversation_id", "conversation", "Conversation the survey was about."),
        rel("customer_id", "customer", "Customer who answered."),
        attr("rating", "rating", pl.Float64, "Rating given (e.g. 1-5)."),
        attr("score", "score", pl.Float64, "Normalised score (0-1)."),
        Column(
            "comment",
            ("attributes", "answers"),
            pl.Utf8,
            "Free-text answers, joined by new lines.",
            derive=_free_text_answers,
        ),
        attr("answers", "answers", pl.Utf8, "Every answer of the response as JSON."),
        attr("status", "status", pl.Utf8, "offered, rated ..."),
        attr("channel", "channel", pl.Utf8, "Channel the survey went out on."),
        attr("submitted_at", "submittedAt", TIMESTAMP, "When the customer answered."),
        rel("form_id", "form", "Survey form (see Kustomer's satisfaction settings)."),
        rel("sent_for_user_id", "user", "Agent the survey was sent for."),
        rel("sent_for_team_id", "team", "Team the survey was sent for."),
        attr("sent_by_team_ids", "sentByTeams", ID_LIST, "Teams that sent the survey."),
    ),
)

USERS = EntitySpec(
    name="users",
    kustomer_type="user",
    source=ListSource("/v1/users", page_size=500),
    role=roles.USER_READ,
    required=False,
    keep_custom=False,
    description=(
        "Kustomer users: agents, admins and machine users. A snapshot of the whole list on "
        "every run, partitioned by the UTC day each user was last updated."
    ),
    columns=(
        *_snapshot_identity("user"),
        attr("name", "name", pl.Utf8, "Full name."),
        attr("display_name", "displayName", pl.Utf8, "Name shown to customers."),
        attr("email", "email", pl.Utf8, "Login email."),
        attr("user_type", "userType", pl.Utf8, "user (a person) or machine (API/bot)."),
        attr("role_group_ids", "roleGroups", ID_LIST, "Role groups granting permissions."),
        attr("deleted_at", "deletedAt", TIMESTAMP, "When the user was deactivated."),
    ),
)

TEAMS = EntitySpec(
    name="teams",
    kustomer_type="team",
    source=ListSource("/v1/teams", page_size=500),
    role=roles.TEAM_READ,
    required=False,
    keep_custom=False,
    description="Agent teams and their members; a snapshot of the whole list on every run.",
    columns=(
        *_snapshot_identity("team"),
        attr("name", "name", pl.Utf8, "Team name."),
        attr("display_name", "displayName", pl.Utf8, "Name shown in the UI."),
        attr("icon", "icon", pl.Utf8, "Icon name."),
        attr("member_user_ids", "members", ID_LIST, "Agents in the team (user ids)."),
        attr("deleted", "deleted", pl.Boolean, "Soft-deleted in Kustomer."),
    ),
)

TAGS = EntitySpec(
    name="tags",
    kustomer_type="tag",
    source=ListSource("/v1/tags"),
    role=roles.TAG_READ,
    required=True,
    keep_custom=False,
    description=(
        "Tags agents and rules put on conversations and customers (records carry tag ids; "
        "this gives their names); a snapshot of the whole list on every run."
    ),
    columns=(
        *_snapshot_identity("tag"),
        attr("name", "name", pl.Utf8, "Tag name."),
        attr("color", "color", pl.Utf8, "Display colour."),
        attr("deleted", "deleted", pl.Boolean, "Soft-deleted in Kustomer."),
    ),
)

BRANDS = EntitySpec(
    name="brands",
    kustomer_type="brand",
    source=ListSource("/v1/brands"),
    role=roles.BRAND_READ,
    required=False,
    keep_custom=False,
    description="Brands an org supports under one Kustomer account; a snapshot on every run.",
    columns=(
        *_snapshot_identity("brand"),
        attr("name", "name", pl.Utf8, "Brand name."),
    ),
)

SATISFACTION_FORMS = EntitySpec(
    name="satisfaction_forms",
    kustomer_type="satisfaction",
    source=ListSource("/v1/satisfaction"),
    role=roles.SATISFACTION_READ,
    required=False,
    keep_custom=False,
    description="CSAT survey forms the org defined (questions, scale); a snapshot on every run.",
    columns=(
        *_snapshot_identity("survey form"),
        attr("name", "name", pl.Utf8, "Survey name."),
        attr("survey_type", "type", pl.Utf8, "Survey type (csat ...)."),
        attr("enabled", "enabled", pl.Boolean, "Whether the survey is sent."),
        attr("questions", "questions", pl.Utf8, "Questions as JSON."),
    ),
)

CUSTOM_ATTRIBUTES = EntitySpec(
    name="custom_attributes",
    kustomer_type="metadata",
    source=MetadataSource(),
    role=roles.METADATA_READ,
    required=True,
    keep_custom=False,
    description=(
        "Definitions of the org's custom attributes per standard object (conversation, "
        "customer, message, company): display name, type and picklist values. "
        "`column_name` is the `custom_*` column holding it in the entity tables."
    ),
    columns=(
        *_snapshot_identity("custom attribute (`<object>.<name>`)"),
        attr("object", "object", pl.Utf8, "Standard object the attribute belongs to."),
        attr("attribute_name", "name", pl.Utf8, "Kustomer attribute name (with type suffix)."),
        attr("column_name", "columnName", pl.Utf8, "Column holding it in this project's tables."),
        attr("display_name", "displayName", pl.Utf8, "Label agents see."),
        attr("attribute_type", "type", pl.Utf8, "string, number, boolean, date, tree ..."),
        attr("picklist_values", "picklistValues", TEXT_LIST, "Allowed values (tree: dot paths)."),
        attr("definition", "definition", pl.Utf8, "The whole definition as JSON."),
    ),
)

KLASSES = EntitySpec(
    name="klasses",
    kustomer_type="klass",
    source=ListSource("/v1/klasses"),
    role=roles.KLASS_READ,
    required=False,
    keep_custom=False,
    description=(
        "Custom object types (KObject classes) and their field definitions; a snapshot on "
        "every run. Join kobjects on `klass_id`."
    ),
    columns=(
        *_snapshot_identity("KObject class"),
        attr("name", "name", pl.Utf8, "Class name (as used in the API)."),
        attr("display_name", "displayName", pl.Utf8, "Label in the UI."),
        attr("icon", "icon", pl.Utf8, "Icon name."),
        attr("color", "color", pl.Utf8, "Display colour."),
        attr("fields", "metadata.properties", pl.Utf8, "Field definitions as JSON."),
    ),
)

KOBJECTS = EntitySpec(
    name="kobjects",
    kustomer_type="kobject",
    source=SearchSource("kobject"),
    role=roles.KLASS_READ,
    required=False,
    description=(
        "Custom objects (KObjects: orders, subscriptions ... as the org defined them), one row "
        "per version; partition D holds objects last updated on UTC day D. Their fields are "
        "typed `custom_*` columns; `klass_id` says which class."
    ),
    columns=(
        *_identity("KObject"),
        Column(
            "klass_id",
            ("relationships", "klass", "data", "id"),
            pl.Utf8,
            "KObject class id (see klasses).",
        ),
        attr("klass_attribute", "klass", pl.Utf8, "Class as the attribute carries it."),
        attr("title", "title", pl.Utf8, "Title shown in the timeline."),
        attr("description", "description", pl.Utf8, "Description."),
        attr("external_id", "externalId", pl.Utf8, "Id in the source system."),
        rel("customer_id", "customer", "Customer the object belongs to."),
    ),
)

ENTITIES: tuple[EntitySpec, ...] = (
    CONVERSATIONS,
    MESSAGES,
    CUSTOMERS,
    NOTES,
    SATISFACTION,
    USERS,
    TEAMS,
    TAGS,
    BRANDS,
    SATISFACTION_FORMS,
    CUSTOM_ATTRIBUTES,
    KLASSES,
    KOBJECTS,
)
ENTITIES_BY_NAME = {spec.name: spec for spec in ENTITIES}
