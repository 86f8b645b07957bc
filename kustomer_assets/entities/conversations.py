"""Conversations and what hangs off them: messages, internal notes, CSAT responses."""

from __future__ import annotations

import polars as pl

from kustomer_assets.entities.columns import free_text_answers, identity
from kustomer_assets.kustomer import roles
from kustomer_assets.records import ID_LIST, TEXT_LIST, TIMESTAMP, Column, attr, rel
from kustomer_assets.spec import (
    ByIdSource,
    EntitySpec,
    Join,
    SearchSource,
    Toggle,
)

CONVERSATIONS = EntitySpec(
    name="conversations",
    kustomer_type="conversation",
    source=SearchSource("conversation"),
    role=roles.CONVERSATION_READ,
    required=True,
    by_id_path="/v1/conversations/{id}",
    webhook_events=("conversation", "message"),
    joins=(
        Join("customer_id", "customers"),
        Join("assigned_user_ids", "users", many=True),
        Join("assigned_team_ids", "teams", many=True),
        Join("tag_ids", "tags", many=True),
        Join("brand_id", "brands"),
    ),
    description=(
        "Every Kustomer conversation (a support case across channels), one row per version: "
        "partition D holds the conversations whose last update fell on UTC day D. Take the "
        "latest `updated_at` per `id` for the current state. Custom conversation attributes "
        "appear as typed `custom_*` columns."
    ),
    columns=(
        *identity("conversation"),
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

MESSAGES = EntitySpec(
    name="messages",
    kustomer_type="message",
    source=SearchSource("message"),
    role=roles.MESSAGE_READ,
    required=True,
    toggle=Toggle(
        "KUSTOMER_INGEST_MESSAGES", "Land the messages table; off for conversations only."
    ),
    webhook_events=("message",),
    joins=(
        Join("conversation_id", "conversations", guaranteed=True),
        Join("customer_id", "customers"),
        Join("sent_by_user_id", "users"),
    ),
    description=(
        "Every message of every conversation (customer and agent sides), one row per version; "
        "partition D holds messages last updated on UTC day D. `preview_text` is Kustomer's "
        "preview of the body (up to about 1,000 characters: the API exposes no fuller body). "
        "Join to conversations on `conversation_id`; order a transcript by `sent_at`."
    ),
    columns=(
        *identity("message"),
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
    webhook_events=("conversation",),
    joins=(Join("conversation_id", "conversations", guaranteed=True),),
    description=(
        "Internal notes agents left on conversations (never seen by customers), one row per "
        "version; partition D holds notes last updated on UTC day D."
    ),
    columns=(
        *identity("note"),
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
    source=ByIdSource(
        "/v1/satisfaction-responses/{id}",
        ids_from="conversations",
        id_column="satisfaction_response_id",
        changed_at_column="satisfaction_updated_at",
        what="CSAT responses",
    ),
    role=roles.SATISFACTION_READ,
    required=False,
    toggle=Toggle(
        "KUSTOMER_FETCH_CSAT_RESPONSES",
        "Fetch CSAT free-text answers, one request per conversation whose satisfaction "
        "changed; scores come with conversations.",
    ),
    joins=(Join("conversation_id", "conversations", guaranteed=True),),
    description=(
        "CSAT survey responses with their free-text comments, one row per version. Kustomer has "
        "no list of responses: each is fetched by id for conversations whose satisfaction "
        "changed, so partition D holds the responses of conversations whose CSAT changed on UTC "
        "day D. Scores alone are also on `conversations` (satisfaction_*), at no extra cost."
    ),
    columns=(
        *identity("CSAT response"),
        rel("conversation_id", "conversation", "Conversation the survey was about."),
        rel("customer_id", "customer", "Customer who answered."),
        attr("rating", "rating", pl.Float64, "Rating given (e.g. 1-5)."),
        attr("score", "score", pl.Float64, "Normalised score (0-1)."),
        Column(
            "comment",
            ("attributes", "answers"),
            pl.Utf8,
            "Free-text answers, joined by new lines.",
            derive=free_text_answers,
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
