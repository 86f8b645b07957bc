"""Reading a "Kustomer Event" webhook body, tolerantly.

Kustomer documents what an outbound webhook carries (a snapshot of the object under `data`,
and `changes` for updates) but not the envelope's exact shape, so the reader accepts the
variants seen in the wild and in other tools' fixtures: the object as a JSON:API resource
(`{type, id, attributes: {updatedAt ...}}`) directly under `data` or one level deeper
(`data.data`, `data.object`, `data.<type>`), the event name under `name`, `type` or `event`.

What it cannot read is listed in `problems` and stored with the event rather than refused:
Kustomer retries a refused delivery for about 80 minutes and then disables the webhook, so a
refusal costs every later event. Only a body that is not JSON, or carries no object id at all,
is refused (400): nothing could be done with it, and the refusal shows in Kustomer's
delivery log where an admin looks when setting the webhook up.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kustomer_assets import timestamps

EVENT_NAME_KEYS = ("name", "type", "event")
NESTED_KEYS = ("data", "object", "resource", "record")
_EVENT_NAME = re.compile(r"^kustomer\.(?P<type>[a-z_]+)\.(?P<action>[a-z_]+)$")

# Standard library only, here and in `store` (and `timestamps`): the receiver is an
# internet-facing process that should start in milliseconds and carry neither dagster nor polars.


def parse_time(value: Any) -> datetime | None:
    """A webhook's time: ISO-8601, or epoch seconds / milliseconds (senders differ)."""
    return timestamps.parse_time(value, epoch=True)


class MalformedEvent(ValueError):
    """The body cannot be used at all (not JSON, not an object, no object id)."""


@dataclass(frozen=True)
class WebhookEvent:
    """What the receiver stores about one delivery (the raw body is kept beside it)."""

    event_id: str | None
    """The envelope's own id, when it has one distinct from the object's: a redelivery of the
    same event carries the same id."""
    event_name: str | None
    object_type: str | None
    object_id: str
    updated_at: datetime | None
    problems: tuple[str, ...] = field(default=())


def _is_resource(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("id"), str | int) and bool(value["id"])


def _find_resource(data: Any, hinted_type: str | None) -> tuple[dict[str, Any] | None, bool]:
    """(the object, whether it was nested a level below `data`)."""
    if not isinstance(data, dict):
        return None, False
    if _is_resource(data) and ("attributes" in data or "type" in data):
        return data, False
    for key in (*NESTED_KEYS, *((hinted_type,) if hinted_type else ())):
        inner = data.get(key)
        if _is_resource(inner):
            return inner, True
    if _is_resource(data):  # a bare {id, updatedAt ...} object without JSON:API framing
        return data, False
    return None, False


def _event_name(envelope: dict[str, Any]) -> str | None:
    for key in EVENT_NAME_KEYS:
        value = envelope.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def parse_event(body: bytes) -> WebhookEvent:
    """The event in `body`; raises `MalformedEvent` only when no object id can be found."""
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedEvent(f"body is not JSON ({type(error).__name__})") from None
    if not isinstance(envelope, dict):
        raise MalformedEvent(f"body is a JSON {type(envelope).__name__}, not an object")
    problems: list[str] = []
    name = _event_name(envelope)
    match = _EVENT_NAME.match(name or "")
    named_type = match.group("type") if match else None
    if name is None:
        problems.append("no event name under name/type/event")
    elif match is None:
        problems.append(f"event name {name[:80]!r} is not kustomer.<object>.<action>")

    resource, nested = _find_resource(envelope.get("data"), named_type)
    if resource is None and "data" not in envelope and _is_resource(envelope):
        # Someone posted the object itself; its id is the object's, not an event's.
        resource, envelope_is_object = envelope, True
        problems.append("no data: the body itself is read as the object")
    else:
        envelope_is_object = False
    if resource is None:
        raise MalformedEvent("no object id under data (data.id or data.data.id)")
    if nested:
        problems.append("object nested one level below data")

    resource_type = resource.get("type")
    object_type = resource_type if isinstance(resource_type, str) and resource_type else None
    if object_type is None:
        object_type = named_type
        problems.append(
            "object has no type" + ("; taken from the event name" if named_type else "")
        )
    elif named_type and named_type != object_type:
        problems.append(f"event name says {named_type} but the object is a {object_type}")

    attributes = resource.get("attributes")
    source = attributes if isinstance(attributes, dict) else resource
    raw_updated = source.get("updatedAt", resource.get("updatedAt"))
    updated_at = parse_time(raw_updated)
    if updated_at is None:
        problems.append(
            "no readable updatedAt; its day is taken from when the event was received"
            if raw_updated is None
            else f"updatedAt {str(raw_updated)[:40]!r} is not a timestamp"
        )

    envelope_id = None if envelope_is_object else envelope.get("id")
    object_id = str(resource["id"])
    event_id = (
        str(envelope_id)
        if isinstance(envelope_id, str | int) and envelope_id and str(envelope_id) != object_id
        else None
    )
    return WebhookEvent(
        event_id=event_id,
        event_name=name,
        object_type=object_type,
        object_id=object_id,
        updated_at=updated_at,
        problems=tuple(problems),
    )
