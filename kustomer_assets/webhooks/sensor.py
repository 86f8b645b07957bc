"""`kustomer_webhook_events`: runs for the days webhook events say changed, within seconds.

Every KUSTOMER_WEBHOOK_SENSOR_INTERVAL_SECONDS (30) it reads the events the receiver stored
after its cursor (the log's `seq`), maps each to the raw tables that hold it, groups them by the
UTC day of the record's `updatedAt` (the day its version lands on; today's open partition
included) and requests a run per day with exactly those tables, through the same planner as
the polling `kustomer_changes` sensor (`automation.plan_runs`: CSAT answers and referenced
customers follow conversations, many days become one range run). It makes no API call itself.
`feedback`'s automation condition then refreshes `feedback` after those runs.

Which tables an event reloads (each spec's `webhook_events`, gathered by `tables_for_events`):
- conversation -> conversations, and notes: Kustomer sends no note events, but a new note
  touches its conversation, on the same day;
- message -> messages and conversations (counts and last-message times live on it);
- customer -> customers; team -> teams; user -> users (whole-list snapshots).
Other object types (a kobject webhook someone added) are counted and skipped.

A run already QUEUED (not started) for the same day and tables will read the change when it
starts, so no second run is requested for it: in a busy org the run rate is bounded by how
long runs take, not by the event rate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from kustomer_assets.automation import (
    DEFAULT_MAX_DAY_RUNS,
    ENV_AUTOMATION_RUNNING,
    ENV_MAX_DAY_RUNS,
    EntityChanges,
    plan_runs,
    raw_keys,
)
from kustomer_assets.entities import ENTITIES, EntitySpec
from kustomer_assets.environment import bool_env, positive_int_env
from kustomer_assets.org import DEFAULT_ORG, Org
from kustomer_assets.timestamps import iso_ms
from kustomer_assets.webhooks.backoff import READER, recent_webhook_event
from kustomer_assets.webhooks.store import StoredEvent, WebhookStore, webhook_store_folder

SENSOR_NAME = READER
ENV_INTERVAL = "KUSTOMER_WEBHOOK_SENSOR_INTERVAL_SECONDS"
DEFAULT_INTERVAL = 30
"""With runs of a few seconds, a change reaches feedback in about a minute."""
BATCH = 10_000
"""Events read per tick; a backlog (the sensor was stopped) is worked off over several ticks."""


def tables_for_events(entities: Iterable[EntitySpec] = ENTITIES) -> dict[str, tuple[str, ...]]:
    """Webhook object type -> the raw tables its events touch (each spec's `webhook_events`)."""
    out: dict[str, tuple[str, ...]] = {}
    for spec in entities:
        for object_type in spec.webhook_events:
            out[object_type] = (*out.get(object_type, ()), spec.name)
    return out


PENDING = (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED)
PARTITION_TAG = "dagster/partition"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def changes_from_events(
    events: Iterable[StoredEvent],
    enabled: Callable[[str], bool] = lambda _: True,
    entities: tuple[EntitySpec, ...] = ENTITIES,
) -> tuple[list[EntityChanges], Counter[str]]:
    """Per raw table, the days the events touched; and the object types that map to none."""
    stamps: dict[str, list[datetime]] = {}
    skipped: Counter[str] = Counter()
    for_event = tables_for_events(entities)
    for event in events:
        tables = [t for t in for_event.get(event.object_type or "", ()) if enabled(t)]
        if not tables:
            skipped[event.object_type or "unknown"] += 1
            continue
        for table in tables:
            stamps.setdefault(table, []).append(event.changed_at.astimezone(UTC))
    changes = [
        EntityChanges(
            entity=table,
            days=frozenset(moment.date() for moment in moments),
            oldest=min(moments),
            newest=max(moments),
            complete=True,
            reported_total=len(moments),
        )
        for table, moments in stamps.items()
    ]
    return changes, skipped


def _already_queued(instance: dg.DagsterInstance, request: dg.RunRequest) -> bool:
    """A not-yet-started run of the same day covers at least the request's tables."""
    if request.partition_key is None:
        return False
    wanted = set(request.asset_selection or ())
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=list(PENDING), tags={PARTITION_TAG: request.partition_key}),
        limit=20,
    )
    return any(wanted <= set(run.asset_selection or ()) for run in runs)


def _polling_state(now: datetime, folder: Path) -> str:
    latest = recent_webhook_event(now, folder=folder)
    return (
        f"kustomer_changes rests (last event {iso_ms(latest)})"
        if latest
        else "kustomer_changes polls (no recent event)"
    )


def build_kustomer_webhook_events_sensor(
    *,
    minimum_interval_seconds: int | None = None,
    store_folder: Path | None = None,
    max_day_runs: int | None = None,
    default_status: dg.DefaultSensorStatus | None = None,
    clock: Callable[[], datetime] = _utc_now,
    entities: tuple[EntitySpec, ...] = ENTITIES,
    org: Org = DEFAULT_ORG,
    job: Any = None,  # an asset job (`dg.define_asset_job`): the runs it requests launch it
) -> dg.SensorDefinition:
    """The sensor; arguments default to the environment (see the module doc).

    `store_folder` defaults to `store.webhook_store_folder()`, read at each tick. `clock` is
    the sensor's "now", which decides today's partition (tests pass the emulator's clock).
    """
    interval = minimum_interval_seconds or positive_int_env(ENV_INTERVAL, DEFAULT_INTERVAL)
    day_runs = max_day_runs or positive_int_env(ENV_MAX_DAY_RUNS, DEFAULT_MAX_DAY_RUNS)
    status = default_status or (
        dg.DefaultSensorStatus.RUNNING
        if bool_env(ENV_AUTOMATION_RUNNING, False)
        else dg.DefaultSensorStatus.STOPPED
    )

    @dg.sensor(
        name=org.name(SENSOR_NAME),
        target=job or dg.AssetSelection.assets(*raw_keys(entities, org)),
        minimum_interval_seconds=interval,
        default_status=status,
        required_resource_keys={org.kustomer_key},
        description=(
            "Reloads the UTC days that Kustomer webhook events (stored by `kustomer-assets "
            "webhooks`) say changed, for the tables the events belong to. No API call of its "
            "own; while events arrive, kustomer_changes skips its searches."
        ),
    )
    def kustomer_webhook_events(
        context: dg.SensorEvaluationContext, **_resources: object
    ) -> dg.SensorResult | dg.SkipReason:
        # `**_resources`: a sensor called directly (tests) gets its resources as arguments.
        kustomer = org.kustomer(context)
        folder = store_folder or webhook_store_folder()
        if folder is None:
            return dg.SkipReason(
                "No webhook store: KUSTOMER_DELTA_ROOT is an object store and "
                "KUSTOMER_WEBHOOK_STORE is not set; polling covers changes."
            )
        store = WebhookStore.existing(folder)
        if store is None:
            return dg.SkipReason(
                f"No webhook events yet: start `kustomer-assets webhooks` (it creates "
                f"{folder}) and point a Kustomer outbound webhook at it."
            )
        after = int(context.cursor or 0)
        now = clock().astimezone(UTC)
        with store:
            if after > store.last_seq():
                context.log.warning(
                    "The webhook event log %s ends at #%d, before this sensor's cursor #%d: "
                    "it was recreated. Reading it from the start.",
                    store.path,
                    store.last_seq(),
                    after,
                )
                after = 0
            events = store.after(after, limit=BATCH)
            # Tells kustomer_changes that someone works the events off (it rests only then).
            store.mark_read(SENSOR_NAME, events[-1].seq if events else after, now)
        if not events:
            return dg.SensorResult(
                skip_reason=f"No webhook event after #{after}; {_polling_state(now, folder)}.",
                cursor=str(after),
            )
        last = events[-1].seq

        off = {spec.name for spec in entities if spec.switched_off(kustomer.switched_off)}
        changes, skipped = changes_from_events(events, lambda table: table not in off, entities)
        # The tick time in the run key lets a cursor set back (a replay) request runs again.
        cursor = f"webhook#{last}@{iso_ms(now)}"
        planned = plan_runs(changes, now.date(), cursor, day_runs, entities, org)
        requests = [r for r in planned if not _already_queued(context.instance, r)]
        unread = sum(1 for e in events if e.problems)
        context.log.info(
            "%d webhook event(s) #%d..#%d: %s%s%s; %d run(s) requested%s",
            len(events),
            events[0].seq,
            last,
            ", ".join(f"{c.entity} {c.reported_total} on {_days(c.days)}" for c in changes)
            or "no table to reload",
            f"; skipped types {dict(skipped)}" if skipped else "",
            f"; {unread} stored with problems (see their rows)" if unread else "",
            len(requests),
            f" ({len(planned) - len(requests)} already queued)"
            if len(planned) > len(requests)
            else "",
        )
        if not requests:
            return dg.SensorResult(
                skip_reason=f"Events #{events[0].seq}..#{last} need no new run.",
                cursor=str(last),
            )
        return dg.SensorResult(run_requests=requests, cursor=str(last))

    return kustomer_webhook_events


def _days(days: Sequence[date] | frozenset[date]) -> str:
    ordered = sorted(days)
    return ", ".join(d.isoformat() for d in ordered[:5]) + (" ..." if len(ordered) > 5 else "")


kustomer_webhook_events = build_kustomer_webhook_events_sensor()
