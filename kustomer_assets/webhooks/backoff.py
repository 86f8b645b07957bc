"""When the polling sensor may rest because webhooks are bringing the changes.

`kustomer_changes` spends one search per searched entity every tick whether or not anything
changed. While webhook events keep arriving, the `kustomer_webhook_events` sensor already
requests the runs, so the polling sensor skips its searches; its cursor stays where it was, so
the first search after the rest covers everything since, as a safety net for what webhooks did
not bring:

- no event for KUSTOMER_WEBHOOK_QUIET_MINUTES (15): the webhook may be disabled (Kustomer turns
  it off after ~10 failed deliveries over ~80 minutes) or the receiver down: polling resumes;
- `kustomer_webhook_events` has not read the log for as long (the sensor is stopped, or its
  ticks fail): events pile up unread, so polling resumes too;
- KUSTOMER_WEBHOOK_MAX_POLL_GAP_MINUTES (60) since the newest change the last search saw: it
  searches anyway, even while events flow. One of several webhooks can be disabled while the
  others work, and notes and custom objects send no webhook events at all; without this, a busy
  org would never poll again.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kustomer_assets.environment import positive_int_env
from kustomer_assets.webhooks.events import iso_ms
from kustomer_assets.webhooks.store import WebhookStore, webhook_store_folder

ENV_QUIET_MINUTES = "KUSTOMER_WEBHOOK_QUIET_MINUTES"
ENV_MAX_POLL_GAP_MINUTES = "KUSTOMER_WEBHOOK_MAX_POLL_GAP_MINUTES"
DEFAULT_QUIET_MINUTES = 15
"""Three polling ticks without an event: long enough that a lull in a normal org does not flip
polling on and off, short enough that a disabled webhook costs minutes, not hours."""
DEFAULT_MAX_POLL_GAP_MINUTES = 60
"""At most one safety-net search round an hour while webhooks flow: 12x fewer than polling."""
READER = "kustomer_webhook_events"
"""The sensor that works the events off marks its reads in the log under this name."""


def quiet_period() -> timedelta:
    """KUSTOMER_WEBHOOK_QUIET_MINUTES: no event for this long and polling resumes."""
    return timedelta(minutes=positive_int_env(ENV_QUIET_MINUTES, DEFAULT_QUIET_MINUTES))


def max_poll_gap() -> timedelta:
    return timedelta(
        minutes=positive_int_env(ENV_MAX_POLL_GAP_MINUTES, DEFAULT_MAX_POLL_GAP_MINUTES)
    )


def _read_log(folder: Path | None) -> tuple[datetime | None, datetime | None]:
    """(latest received_at, when the webhook sensor last read); Nones when unreadable."""
    where = folder if folder is not None else webhook_store_folder()
    if where is None:
        return None, None
    try:
        store = WebhookStore.existing(where)
        if store is None:
            return None, None
        with store:
            read = store.last_read(READER)
            return store.latest_received_at(), read[1] if read else None
    except (sqlite3.Error, OSError):
        return None, None


def _within(moment: datetime | None, now: datetime, window: timedelta) -> bool:
    return moment is not None and now.astimezone(UTC) - moment < window


def recent_webhook_event(
    now: datetime, *, folder: Path | None = None, quiet: timedelta | None = None
) -> datetime | None:
    """When the latest webhook event arrived, if that is less than `quiet` before `now`.

    None means "poll": no store configured or created yet, no event for the quiet period, or a
    store that cannot be read. Erring towards polling is the safe side: a missed search costs
    freshness, a needless one only budget.
    """
    latest, _ = _read_log(folder)
    window = quiet if quiet is not None else quiet_period()
    return latest if _within(latest, now, window) else None


def polling_rest_reason(
    now: datetime,
    last_change_seen: datetime,
    *,
    folder: Path | None = None,
    quiet: timedelta | None = None,
    max_gap: timedelta | None = None,
) -> str | None:
    """Why `kustomer_changes` may skip this tick's searches, or None when it must search.

    `last_change_seen` is the polling cursor: the newest updatedAt its last search found.
    It rests only while events arrive AND `kustomer_webhook_events` reads them (both within
    the quiet period), and not longer than the max poll gap since `last_change_seen`.
    """
    window = quiet if quiet is not None else quiet_period()
    latest, read = _read_log(folder)
    if not _within(latest, now, window) or not _within(read, now, window):
        return None
    assert latest is not None
    gap = max_gap if max_gap is not None else max_poll_gap()
    if now - last_change_seen >= gap:
        return None
    return (
        f"Webhook events are arriving (latest received {iso_ms(latest)}): no search this tick. "
        f"Polling resumes after {window} without an event, and searches at least every {gap}."
    )
