"""Reading Kustomer's JSON:API answers and their timestamps, tolerantly, in one place.

Reading the few scalars the client itself needs from JSON (timestamps, counts), tolerantly:
a server that sends `"500"` for a total or an offset instead of `Z` must not break paging.
The envelope readers (`meta`, `records`, `next_link`) exist for the same reason: list paging,
search paging and the id check all read the same envelope, and a body whose `links` or `meta`
is not an object must mean "absent" to every one of them alike.

`parse_time` (from `kustomer_assets.timestamps`) and `int_or_none` are the public parsers for
anything in this project that reads Kustomer timestamps or counts (the record mapping
included), so one rule decides what a timestamp is.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kustomer_assets.timestamps import parse_time

Record = dict[str, Any]
"""One JSON:API resource object: `{"type", "id", "attributes", "relationships", ...}`."""

ONE_MS = timedelta(milliseconds=1)
"""Kustomer's timestamp precision: the smallest step of a time cursor or a window split."""


# -- scalars -----------------------------------------------------------------------------------


def int_or_none(value: Any) -> int | None:
    """A count from JSON (int, integral float or digit string); anything else is unknown.

    Booleans are not counts (`True` would otherwise read as 1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime (naive means UTC), so window bounds compare with parsed times."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def floor_ms(value: datetime) -> datetime:
    """`value` cut to whole milliseconds, the precision Kustomer stores and filters on."""
    return value.replace(microsecond=(value.microsecond // 1000) * 1000)


# -- the envelope ------------------------------------------------------------------------------


def meta(body: dict[str, Any]) -> dict[str, Any]:
    """The answer's `meta` object, or {} when it is missing or not an object."""
    value = body.get("meta")
    return value if isinstance(value, dict) else {}


def total(body: dict[str, Any]) -> int | None:
    """`meta.total`: how many records the query holds, when the endpoint reports it."""
    return int_or_none(meta(body).get("total"))


def records(body: dict[str, Any]) -> list[Record]:
    """The resource objects of a list answer (`data`), skipping anything that is not one."""
    return [r for r in body.get("data") or [] if isinstance(r, dict)]


def next_link(body: dict[str, Any]) -> str | None:
    """`links.next` when it names a page (a non-blank string); None means the last page."""
    links = body.get("links")
    if not isinstance(links, dict):
        return None
    nxt = links.get("next")
    return nxt if isinstance(nxt, str) and nxt.strip() else None


def attr(record: Record, name: str) -> Any:
    """An attribute of a resource, read from `attributes` or, failing that, the top level:
    a server that flattens its objects must still be sortable and windowed."""
    attributes = record.get("attributes")
    if isinstance(attributes, dict) and name in attributes:
        return attributes.get(name)
    return record.get(name)


__all__ = [
    "ONE_MS",
    "Record",
    "as_utc",
    "attr",
    "floor_ms",
    "int_or_none",
    "meta",
    "next_link",
    "parse_time",
    "records",
    "total",
]
