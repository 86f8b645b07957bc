"""Epoch-millisecond time helpers: the emulator keeps every instant as integer ms.

Kustomer's timestamps are UTC strings with millisecond precision; generation, mutations and search
convert between them and ms a great deal, so the conversions are exact and cached.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
SEARCHABLE_MS = 730 * DAY_MS  # search only covers updatedAt within the past 2 years


@lru_cache(maxsize=100_000)
def _hour_prefix(hour: int) -> str:
    t = time.gmtime(hour * 3600)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:"


def ms_to_iso(ms: int) -> str:
    """Kustomer's timestamp format: UTC, millisecond precision, trailing Z."""
    hour, rest = divmod(ms, HOUR_MS)
    minute, rest = divmod(rest, MINUTE_MS)
    sec, milli = divmod(rest, 1000)
    return f"{_hour_prefix(hour)}{minute:02d}:{sec:02d}.{milli:03d}Z"


@lru_cache(maxsize=200_000)
def iso_to_ms(value: str) -> int | None:
    """Parse any ISO-8601 instant to epoch ms (naive = UTC); None when it is not a timestamp.

    Cached because search compares the same few thousand strings on every page request.
    """
    if len(value) < 10 or value[4] != "-" or value[7] != "-":
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return dt_to_ms(dt)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def dt_to_ms(dt: datetime) -> int:
    """Exact integer epoch ms (naive = UTC); no float rounding surprises at ms boundaries."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _MS


def utcnow_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)
