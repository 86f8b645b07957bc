"""The one reading and writing of Kustomer times, with the standard library only.

Everything that reads a time from Kustomer (search pages, record attributes, webhook bodies)
parses it here, and everything that sends one (search criteria, cursors, run keys) formats it
here, so a record's `updatedAt` and a window bound always compare alike. Standard library only:
the webhook receiver is an internet-facing process that must start in milliseconds, without
httpx, polars or dagster.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

EPOCH_MS_ABOVE = 100_000_000_000
"""Epoch numbers above this are milliseconds (1e11 s is year 5138; 1e11 ms is 1973)."""

_EPOCH_TEXT = re.compile(r"-?\d+(\.\d+)?")


def parse_time(value: Any, *, epoch: bool = False) -> datetime | None:
    """ISO-8601 text (with `Z` or an offset; naive means UTC) -> aware UTC datetime, or None.

    With `epoch`, numbers (and number-only text) are epoch seconds or milliseconds too: webhook
    senders and deviating servers use them. Anything else (None, garbage) is None rather than
    an error: a record with an odd timestamp must not stop a page from being read."""
    if epoch and isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > EPOCH_MS_ABOVE else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if epoch and _EPOCH_TEXT.fullmatch(text):
        return parse_time(float(text), epoch=True)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def iso_ms(value: datetime) -> str:
    """UTC with milliseconds and a Z: how Kustomer writes times and search criteria take them
    (so it also sorts as text)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
