"""Record factories for conversations and what hangs off them: messages, notes, CSAT answers.

A full generated conversation (its messages' timing, status, CSAT) is built in
`generate_conversation`; the shell here is what a mutation `create` makes.
"""

from __future__ import annotations

from random import Random
from typing import TYPE_CHECKING, Any

from .jsonapi import _oid, _rel, _resource, _times
from .timestamps import ms_to_iso
from .values import _custom, _text
from .vocabulary import CHANNEL_WEIGHTS, CHANNELS, NOTE_BODIES, SENTENCES

if TYPE_CHECKING:
    from .state import Dataset


def _make_conversation_shell(
    rng: Random, created: int, customer_id: str | None, ds: Dataset
) -> dict[str, Any]:
    """A new conversation with no messages yet (used for mutations 'create')."""
    channel = rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
    id_ = _oid(rng, created)
    brands = sorted(ds.records.get("brand", {}))
    return _resource(
        "conversation",
        id_,
        {
            "name": rng.choice(SENTENCES)[:60],
            "channels": [channel],
            "status": "open",
            "priority": 3,
            "direction": "in",
            "preview": "",
            "messageCount": 0,
            "noteCount": 0,
            "outboundMessageCount": 0,
            "satisfaction": 0,
            "satisfactionLevel": None,
            "tags": [],
            "suggestedTags": [],
            "assignedUsers": [],
            "assignedTeams": [],
            "firstResponse": None,
            "firstDone": None,
            "lastDone": None,
            "lastMessageAt": None,
            "reopenCount": 0,
            "ended": False,
            "endedAt": None,
            "externalId": None,
            "deleted": False,
            **_times(created, created),
            "modifiedAt": ms_to_iso(created),
            "rev": 1,
            "custom": {},
        },
        {
            "customer": _rel("customer", customer_id),
            "brand": _rel("brand", brands[0] if brands else None),
            "createdBy": _rel("user", None),
            "messages": {"links": {"self": f"/v1/conversations/{id_}/messages"}},
        },
    )


def _make_message(
    rng: Random,
    conv_id: str | None,
    customer_id: str | None,
    agent_id: str | None,
    t: int,
    direction: str,
    channel: str,
) -> dict[str, Any]:
    preview = _text(rng)
    meta: dict[str, Any] = {}
    if channel == "email":
        meta = {
            "subject": rng.choice(("Re: your order", "Où est ma commande ?", "Refund request")),
            "from": "support@example.com" if direction == "out" else "customer@mail.example.com",
            "to": ["customer@mail.example.com" if direction == "out" else "support@example.com"],
        }
    sender = agent_id if direction == "out" else None
    return _resource(
        "message",
        _oid(rng, t),
        {
            "channel": channel,
            "app": "postmark" if channel == "email" else channel,
            "direction": direction,
            "preview": preview,
            "meta": meta,
            "status": "sent" if direction == "out" else "received",
            "size": len(preview.encode("utf-8")) + rng.randint(200, 4000),
            "attachments": [],
            "sentAt": ms_to_iso(t),
            **_times(t, t),
            "modifiedAt": ms_to_iso(t),
            "custom": _custom(rng, "message", t),
        },
        {
            "conversation": _rel("conversation", conv_id),
            "customer": _rel("customer", customer_id),
            "createdBy": _rel("user", sender),
            "sentBy": _rel("user", sender),
        },
    )


def _make_note(
    rng: Random, conv_id: str | None, customer_id: str | None, agent_id: str | None, t: int
) -> dict[str, Any]:
    mentions = [agent_id] if agent_id and rng.random() < 0.2 else []
    return _resource(
        "note",
        _oid(rng, t),
        {
            "body": rng.choice(NOTE_BODIES),
            "userMentions": mentions,
            "deleted": False,
            "deletedAt": None,
            "externalId": None,
            **_times(t, t),
            "modifiedAt": ms_to_iso(t),
        },
        {
            "conversation": _rel("conversation", conv_id),
            "customer": _rel("customer", customer_id),
            "createdBy": _rel("user", agent_id),
        },
    )


def _comment_answer(rng: Random) -> dict[str, Any]:
    comment = rng.choice(
        (
            "Très bien, merci ! 👍",
            "Slow response but solved.",
            "最高のサポートでした",
            "Nope. Still waiting for my refund 😡",
            "",
        )
    )
    return {"id": "q2", "type": "text", "answer": comment}


def _make_response(
    rng: Random,
    t: int,
    conv_id: str | None,
    customer_id: str | None,
    form_id: str | None,
    agent_id: str | None,
    team_id: str | None,
) -> dict[str, Any]:
    rating = rng.choices((1, 2, 3, 4, 5), (1, 1, 2, 4, 6))[0]
    return _resource(
        "satisfaction_response",
        _oid(rng, t),
        {
            "rating": rating,
            "score": rating / 5,
            "status": "rated",
            "channel": "email",
            "answers": [{"id": "q1", "type": "rating", "answer": rating}, _comment_answer(rng)],
            "sentByTeams": [team_id] if team_id else [],
            "submittedAt": ms_to_iso(t),
            **_times(t, t),
        },
        {
            "conversation": _rel("conversation", conv_id),
            "customer": _rel("customer", customer_id),
            "form": _rel("satisfaction", form_id),
            "user": _rel("user", agent_id),
            "team": _rel("team", team_id),
        },
    )
