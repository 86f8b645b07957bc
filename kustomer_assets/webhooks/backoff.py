"""When the polling sensor may rest because webhooks are bringing the changes.

`kustomer_changes` spends one search per searched entity every tick whether or not anything
changed. Once webhooks are on -- `kustomer_webhook_events` is reading the event log -- that
sensor requests the runs for what changed, and polling becomes the safety net: it searches at
most every KUSTOMER_WEBHOOK_SAFETY_POLL_MINUTES (60; 12x fewer searches than every 5 minutes),
whether events arrive or the org is quiet. Its cursor stays where it was, so that search covers
everything since, including what no webhook brought (notes and custom objects send no events;
one of several webhooks can be disabled while the others work).

Polling returns to every tick when webhooks are off: no event log, or `kustomer_webhook_events`
has not read it for KUSTOMER_WEBHOOK_QUIET_MINUTES (15): the sensor is stopped or failing and
events pile up unread. A quiet org and a disabled webhook look the same from here (Kustomer
sends no heartbeat, and disables a webhook after ~10 failed deliveries over ~80 minutes), so
when no event has arrived for longer than the quiet period, every resting tick says so and
where to look.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kustomer_assets.environment import positive_int_env
from kustomer_assets.timestamps import iso_ms
from kustomer_assets.webhooks.store import WebhookStore, webhook_store_folder

ENV_QUIET_MINUTES = "KUSTOMER_WEBHOOK_QUIET_MINUTES"
ENV_MAX_POLL_GAP_MINUTES = "KUSTOMER_WEBHOOK_SAFETY_POLL_MINUTES"
DEFAULT_QUIET_MINUTES = 15
"""Three polling ticks without an event: long enough that a lull in a normal org does not flip
polling on and off, short enough that a disabled webhook costs minutes, not hours."""
DEFAULT_MAX_POLL_GAP_MINUTES = 60
"""One safety-net search round an hour while webhooks are on: 12x fewer than polling."""
READER = "kustomer_webhook_events"
"""The sensor that works the events off marks its reads in the log under this name."""
POLLER = "kustomer_changes"
"""The polling sensor marks its safety-net searches in the log under this name."""


def quiet_period() -> timedelta:
    """KUSTOMER_WEBHOOK_QUIET_MINUTES: no event for this long and polling resumes."""
    return timedelta(minutes=positive_int_env(ENV_QUIET_MINUTES, DEFAULT_QUIET_MINUTES))


def max_poll_gap() -> timedelta:
    return timedelta(
        minutes=positive_int_env(ENV_MAX_POLL_GAP_MINUTES, DEFAULT_MAX_POLL_GAP_MINUTES)
    )


def _read_log(folder: Path | None) -> tuple[datetime | None, datetime | None, datetime | None]:
    """(latest received_at, when the webhook sensor last read, when polling last searched);
    Nones when unreadable."""
    where = folder if folder is not None else webhook_store_folder()
    if where is None:
        return None, None, None
    try:
        store = WebhookStore.existing(where)
        if store is None:
            return None, None, None
        with store:
            read, searched = store.last_read(READER), store.last_read(POLLER)
            return (
                store.latest_received_at(),
                read[1] if read else None,
                searched[1] if searched else None,
            )
    except (sqlite3.Error, OSError):
        return None, None, None


def note_polling_search(now: datetime, *, folder: Path | None = None) -> None:
    """Record that `kustomer_changes` searched, so the next rest is measured from it."""
    where = folder if folder is not None else webhook_store_folder()
    if where is None:
        return
    try:
        store = WebhookStore.existing(where)
        if store is None:
            return
        with store:
            store.mark_read(POLLER, store.last_seq(), now)
    except (sqlite3.Error, OSError):
        return  # no record: the next tick searches, the safe side


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
    latest, _, _ = _read_log(folder)
    window = quiet if quiet is not None else quiet_period()
    return latest if _within(latest, now, window) else None


@dataclass(frozen=True)
class Rest:
    """Why `kustomer_changes` skips this tick's searches; `overdue` when no event has arrived
    for longer than the quiet period (a quiet org, or a webhook Kustomer disabled)."""

    reason: str
    overdue: bool


def polling_rest_reason(
    now: datetime,
    *,
    folder: Path | None = None,
    quiet: timedelta | None = None,
    max_gap: timedelta | None = None,
) -> Rest | None:
    """Why `kustomer_changes` may skip this tick's searches, or None when it must search:
    webhooks are off, polling never searched since they came on, or its last search is a
    safety-net interval old."""
    window = quiet if quiet is not None else quiet_period()
    latest, read, searched = _read_log(folder)
    if not _within(read, now, window):
        return None  # nobody works the events off: polling is the only source
    gap = max_gap if max_gap is not None else max_poll_gap()
    if searched is None or now - searched >= gap:
        return None
    following = f"the next safety-net search is at {iso_ms(searched + gap)}"
    if _within(latest, now, window):
        assert latest is not None
        return Rest(
            f"Webhook events are arriving (latest received {iso_ms(latest)}): no search this "
            f"tick; {following}.",
            overdue=False,
        )
    since = f"since {iso_ms(latest)}" if latest is not None else "yet"
    return Rest(
        f"No webhook event {since}, longer than the {window} expected: if Kustomer changed "
        "meanwhile, its outbound webhook may be disabled (Settings > Platform > Outbound "
        f"webhooks) or the receiver unreachable; polling searches as the safety net, {following}.",
        overdue=True,
    )
