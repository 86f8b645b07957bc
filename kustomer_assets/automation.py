"""What keeps the Kustomer tables current without anyone clicking: a change sensor, a nightly
finalization of yesterday, and the automation-condition sensor that refreshes `feedback`.

- `kustomer_changes` (sensor, every KUSTOMER_SENSOR_INTERVAL_SECONDS, default 300): one small
  search per searched entity asks Kustomer what changed since the cursor, and requests a run
  for each UTC day those records now sit on. Its first tick has nothing to compare with: it
  requests the last KUSTOMER_FIRST_SYNC_DAYS days (default 7) of every raw table as one run.
  While Kustomer webhook events keep arriving it skips its searches (`webhooks/backoff.py`):
  the `kustomer_webhook_events` sensor requests those runs instead.
- `finalize_yesterday` (schedule, 02:00 UTC): reloads yesterday's partition of every raw table
  once the day is closed, which also catches what the sensor cannot see: list-only tables
  (agents, teams, tags ...) and records Kustomer's search indexed late.
- `default_automation_condition_sensor`: evaluates `feedback`'s `AutomationCondition.eager()`
  and the hourly `partition_fresh` checks. Dagster creates this sensor stopped; defining it
  here makes it start with the code location.

The sensor and the schedule call Kustomer, so they start stopped unless
KUSTOMER_AUTOMATION_RUNNING=true: turning a code location on should not spend the org's API
budget before someone chose to.

Concurrency pool `kustomer_api`: every raw asset takes a slot of it, so its limit caps how many
runs call Kustomer at once. Every run has its own budgets, and the search budget belongs to the
API key all runs share, so: recommended limit = the key's search budget ÷ what one run may use
(`search_requests_per_minute`, KUSTOMER_SEARCH_REQUESTS_PER_MINUTE): with Kustomer's 100
searches/min per API key (the connector's own key) and 90 per run, that is ⌊100 / 90⌋ = **1**
(`RECOMMENDED_POOL_LIMIT`; `recommended_pool_limit()` computes it for other settings). Set it
with `dagster instance concurrency set kustomer_api 1`, or in dagster.yaml under
`concurrency: pools: default_limit: 1`. Sensor runs for several days then queue instead of
racing each other into 429s.
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from kustomer_assets.entities import ENTITIES, EntitySpec, SearchSource
from kustomer_assets.environment import bool_env, positive_int_env
from kustomer_assets.kustomer import KustomerClient, KustomerPermissionError, KustomerSettings
from kustomer_assets.kustomer.resource import KustomerResource
from kustomer_assets.org import DEFAULT_ORG, Org
from kustomer_assets.partitions import daily_partitions
from kustomer_assets.records import parse_timestamp
from kustomer_assets.timestamps import iso_ms
from kustomer_assets.webhooks.backoff import note_polling_search, polling_rest_reason

ENV_FIRST_SYNC_DAYS = "KUSTOMER_FIRST_SYNC_DAYS"
ENV_SENSOR_INTERVAL = "KUSTOMER_SENSOR_INTERVAL_SECONDS"
ENV_MAX_DAY_RUNS = "KUSTOMER_SENSOR_MAX_DAY_RUNS"
ENV_AUTOMATION_RUNNING = "KUSTOMER_AUTOMATION_RUNNING"
DEFAULT_FIRST_SYNC_DAYS = 7
DEFAULT_SENSOR_INTERVAL = 300
"""Five searched entities, one search each per tick: about 1 search/min of the 100/min budget."""
DEFAULT_MAX_DAY_RUNS = 7
"""Above this many changed days in one tick (the sensor was off for a while), one run over the
range replaces one run per day: a single search sequence costs far less than many."""
FINALIZE_CRON = "0 2 * * *"
"""02:00 UTC: yesterday is closed and late edits of its last hours have settled."""

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def raw_keys(
    entities: Iterable[EntitySpec] = ENTITIES, org: Org = DEFAULT_ORG
) -> tuple[dg.AssetKey, ...]:
    return tuple(org.asset_key(spec.name) for spec in entities)


def searched(entities: Iterable[EntitySpec] = ENTITIES) -> tuple[EntitySpec, ...]:
    return tuple(spec for spec in entities if spec.is_searched)


RAW_KEYS = raw_keys()
SEARCHED = searched()

KUSTOMER_SEARCH_PER_MINUTE = 100
"""Kustomer's search limit for API keys (kustomer-api notes, "Rate limits")."""
CONNECTOR_SHARE = 1.0
"""Part of the key's search budget this connector's runs may use together: all of it, since the
search budget is per API key and the key is the connector's own (the org budget, shared with
other apps, is a share already: `org_requests_per_minute`)."""
PER_RUN_SEARCH_PER_MINUTE = KustomerSettings.search_requests_per_minute
"""The `search_requests_per_minute` default (`KustomerSettings`, 90): what one run may spend."""


def recommended_pool_limit(
    org_search_per_minute: int = KUSTOMER_SEARCH_PER_MINUTE,
    connector_share: float = CONNECTOR_SHARE,
    per_run_search_per_minute: int = PER_RUN_SEARCH_PER_MINUTE,
) -> int:
    """Runs that may call Kustomer at once: the key's search budget (the part the connector's
    runs may use) / one run's search budget, at least 1; ⌊100 / 90⌋ = 1 by default."""
    return max(1, int(org_search_per_minute * connector_share // per_run_search_per_minute))


RECOMMENDED_POOL_LIMIT = recommended_pool_limit()

SENSOR_CLIENT_LIMITS = {
    "timeout_seconds": 10.0,
    "max_retries": 2,
    "max_rate_limit_wait_seconds": 20.0,
}
"""A sensor tick must finish within Dagster's evaluation timeout (about a minute): fail the
tick fast and let the next one retry, instead of waiting out a 429 storm like a run does."""


def _running_by_default() -> bool:
    return bool_env(ENV_AUTOMATION_RUNNING, False)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _floor_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def refreshed_with(changed: Iterable[str], entities: Iterable[EntitySpec] = ENTITIES) -> set[str]:
    """Entities to reload for a day on which the `changed` entities changed.

    Read from the spec table's `follows`: CSAT responses are fetched for conversations whose
    satisfaction changed, and a spec's `Reference` (customers) fetches the records the changed
    table's rows point at, so both follow the table they depend on.
    """
    out = set(changed)
    for spec in entities:
        if any(upstream in changed for upstream in spec.follows):
            out.add(spec.name)
    return out


@dataclass(frozen=True)
class EntityChanges:
    """What one search said about one entity since the cursor."""

    entity: str
    days: frozenset[date]
    oldest: datetime | None
    newest: datetime | None
    complete: bool
    """False when more records changed than one page holds: only the oldest ones were seen."""
    reported_total: int | None


def find_changes(
    client: KustomerClient, spec: EntitySpec, since: datetime, until: datetime
) -> EntityChanges:
    """ONE search request: records of `spec` updated in [since, until), oldest first.

    One full page (500 records) is read and paging stops there: the oldest change is what the
    sensor needs when there are more, and the search budget is what it must not spend.
    """
    if not isinstance(spec.source, SearchSource):  # narrows the type for query_context
        raise TypeError(f"{spec.name} is not read through search")
    window = client.search_window(spec.source.query_context, since, until, role=spec.role)
    page = window.first_page()
    stamps = [
        stamp
        for record in page
        if (stamp := parse_timestamp((record.get("attributes") or {}).get("updatedAt")))
    ]
    total = window.reported_total
    # Without meta.total, a page shorter than asked for is the last one.
    page_size = client.settings.search_page_size
    complete = len(page) >= total if total is not None else len(page) < page_size
    return EntityChanges(
        entity=spec.name,
        days=frozenset(stamp.date() for stamp in stamps),
        oldest=min(stamps, default=None),
        newest=max(stamps, default=None),
        complete=complete,
        reported_total=total,
    )


@contextmanager
def _sensor_client(kustomer: KustomerResource, logger: Any) -> Iterator[KustomerClient]:
    settings = replace(kustomer.settings(), **SENSOR_CLIENT_LIMITS)
    with KustomerClient(settings, logger=logger) as client:
        yield client


def _partition_days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _first_sync_request(
    now: datetime, days: int, keys: tuple[dg.AssetKey, ...] = RAW_KEYS
) -> dg.RunRequest:
    last = now.date()
    first = max(last - timedelta(days=days - 1), daily_partitions.start.date())
    return dg.RunRequest(
        # The tick time keeps a reset cursor able to ask again the same day.
        run_key=f"first-sync:{first}..{last}@{iso_ms(now)}",
        asset_selection=list(keys),
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
    )


def plan_runs(
    changes: Iterable[EntityChanges],
    today: date,
    cursor: str,
    max_day_runs: int,
    entities: tuple[EntitySpec, ...] = ENTITIES,
    org: Org = DEFAULT_ORG,
) -> list[dg.RunRequest]:
    """Run requests for the changed days: one per day, or one range run when there are many."""
    first_partition = daily_partitions.start.date()
    per_day: dict[date, set[str]] = {}
    for change in changes:
        if change.oldest is None:
            continue
        days = set(change.days)
        if not change.complete:
            # Unseen changes are newer than the oldest seen: every day since may hold some.
            days |= set(_partition_days(change.oldest.date(), today))
        for day in days:
            # Clock skew can stamp a record after our "today"; partitions end at today.
            day = min(max(day, first_partition), today)
            per_day.setdefault(day, set()).add(change.entity)
    if not per_day:
        return []
    if len(per_day) > max_day_runs:
        first, last = min(per_day), max(per_day)
        changed = refreshed_with(set().union(*per_day.values()), entities)
        return [
            dg.RunRequest(
                run_key=f"changes:{first}..{last}@{cursor}",
                asset_selection=_keys(changed, entities, org),
                tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
            )
        ]
    return [
        dg.RunRequest(
            run_key=f"changes:{day}@{cursor}",
            partition_key=day.isoformat(),
            asset_selection=_keys(refreshed_with(names, entities), entities, org),
        )
        for day, names in sorted(per_day.items())
    ]


def _keys(names: Iterable[str], entities: tuple[EntitySpec, ...], org: Org) -> list[dg.AssetKey]:
    wanted = set(names)
    return [key for key in raw_keys(entities, org) if key.path[-1] in wanted]


def build_kustomer_changes_sensor(
    *,
    minimum_interval_seconds: int | None = None,
    first_sync_days: int | None = None,
    max_day_runs: int | None = None,
    default_status: dg.DefaultSensorStatus | None = None,
    clock: Callable[[], datetime] = _utc_now,
    webhook_store: Path | None = None,
    webhooks: bool = True,
    entities: tuple[EntitySpec, ...] = ENTITIES,
    org: Org = DEFAULT_ORG,
    job: Any = None,  # an asset job (`dg.define_asset_job`): the runs it requests launch it
) -> dg.SensorDefinition:
    """The `kustomer_changes` sensor; arguments default to the environment (see module doc).

    `clock` is the sensor's "now" (tests pass the emulator's clock); `webhook_store` is the
    webhook event log's folder (default: `webhooks.store.webhook_store_folder()`); with
    `webhooks` False the sensor never rests (an org whose events no store receives).
    """
    interval = minimum_interval_seconds or positive_int_env(
        ENV_SENSOR_INTERVAL, DEFAULT_SENSOR_INTERVAL
    )
    look_back = first_sync_days or positive_int_env(ENV_FIRST_SYNC_DAYS, DEFAULT_FIRST_SYNC_DAYS)
    day_runs = max_day_runs or positive_int_env(ENV_MAX_DAY_RUNS, DEFAULT_MAX_DAY_RUNS)
    status = default_status or (
        dg.DefaultSensorStatus.RUNNING if _running_by_default() else dg.DefaultSensorStatus.STOPPED
    )

    keys = raw_keys(entities, org)

    @dg.sensor(
        name=org.name("kustomer_changes"),
        target=job or dg.AssetSelection.assets(*keys),
        minimum_interval_seconds=interval,
        default_status=status,
        required_resource_keys={org.kustomer_key},
        description=(
            "Asks Kustomer what changed since the last tick (one search per searched entity) "
            "and reloads the UTC days the changed records now belong to. The first tick loads "
            f"the last {look_back} days of every table (KUSTOMER_FIRST_SYNC_DAYS)."
        ),
    )
    def kustomer_changes(
        context: dg.SensorEvaluationContext, **_resources: object
    ) -> dg.SensorResult | dg.SkipReason:
        # `**_resources`: a sensor called directly (tests) gets its resources as arguments.
        kustomer = org.kustomer(context)
        now = _floor_ms(clock().astimezone(UTC))
        if not context.cursor:
            context.log.info("No cursor yet: loading the last %d days as one run", look_back)
            return dg.SensorResult(
                run_requests=[_first_sync_request(now, look_back, keys)], cursor=iso_ms(now)
            )
        seen = parse_timestamp(context.cursor)
        if seen is None:
            raise ValueError(
                f"kustomer_changes cursor {context.cursor!r} is not a timestamp; reset the "
                "sensor's cursor in the UI (the next tick then loads the look-back days again)."
            )
        # Webhooks bring the changes for now; the cursor stays, so the next search covers all.
        resting = polling_rest_reason(now, folder=webhook_store) if webhooks else None
        if resting is not None:
            if resting.overdue:
                context.log.warning(resting.reason)
            return dg.SkipReason(resting.reason)
        if webhooks:
            note_polling_search(now, folder=webhook_store)
        # The cursor is the newest updatedAt seen: ask for strictly newer (ms precision).
        since = seen + timedelta(milliseconds=1)
        changes: list[EntityChanges] = []
        with _sensor_client(kustomer, context.log) as client:
            for spec in searched(entities):
                if spec.switched_off(kustomer.switched_off):
                    continue
                try:
                    changes.append(find_changes(client, spec, since, now))
                except KustomerPermissionError as error:
                    if spec.required:
                        raise
                    context.log.warning("%s not watched: %s", spec.name, error)
        changed = [c for c in changes if c.newest is not None]
        if not changed:
            return dg.SkipReason(f"Nothing changed in Kustomer since {context.cursor}.")
        # When a page was full the newest change is unknown; the runs reload every day up to
        # today, so everything before `now` is covered.
        newest = max(c.newest for c in changed if c.newest is not None)
        cursor = iso_ms(newest if all(c.complete for c in changed) else now)
        requests = plan_runs(changed, now.date(), cursor, day_runs, entities, org)
        context.log.info(
            "Changes since %s: %s; %d run(s) requested",
            context.cursor,
            ", ".join(
                f"{c.entity} {c.reported_total if c.reported_total is not None else '?'}"
                for c in changed
            ),
            len(requests),
        )
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return kustomer_changes


def build_finalize_yesterday_schedule(
    *,
    cron_schedule: str = FINALIZE_CRON,
    default_status: dg.DefaultScheduleStatus | None = None,
    entities: tuple[EntitySpec, ...] = ENTITIES,
    org: Org = DEFAULT_ORG,
    job: Any = None,  # an asset job (`dg.define_asset_job`): the runs it requests launch it
) -> dg.ScheduleDefinition:
    """`finalize_yesterday`: yesterday's partition of every raw asset, in one run."""
    status = default_status or (
        dg.DefaultScheduleStatus.RUNNING
        if _running_by_default()
        else dg.DefaultScheduleStatus.STOPPED
    )

    @dg.schedule(
        name=org.name("finalize_yesterday"),
        cron_schedule=cron_schedule,
        execution_timezone="UTC",
        target=job or dg.AssetSelection.assets(*raw_keys(entities, org)),
        default_status=status,
        description=(
            "Reloads yesterday (UTC) in every Kustomer table once the day is over: the final "
            "version of the day, including list-only tables the change sensor cannot watch."
        ),
    )
    def finalize_yesterday(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        yesterday = context.scheduled_execution_time.astimezone(UTC).date() - timedelta(days=1)
        return dg.RunRequest(
            run_key=f"finalize:{yesterday}",
            partition_key=yesterday.isoformat(),
            asset_selection=list(raw_keys(entities, org)),
        )

    return finalize_yesterday


def build_automation_condition_sensor(
    org: Org = DEFAULT_ORG, assets: Iterable[dg.AssetsDefinition] | None = None
) -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates the automation conditions of `assets` (every asset of the
    code location when None: this repository's own location). Scoped to an org's assets it
    has a name of its own: Dagster's `default_automation_condition_sensor` name would make the
    sensor Dagster adds for a project's own assets replace it."""
    target = (
        dg.AssetSelection.all()
        if assets is None
        else dg.AssetSelection.assets(*[key for asset in assets for key in asset.keys])
    )
    name = "default_automation_condition_sensor" if assets is None else "kustomer_automation"
    return dg.AutomationConditionSensorDefinition(
        org.name(name),
        target=target,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Evaluates automation conditions: refreshes feedback after its inputs change "
            "(eager) and runs the hourly partition_fresh checks."
        ),
    )


default_automation_condition_sensor = build_automation_condition_sensor()

kustomer_changes = build_kustomer_changes_sensor()
finalize_yesterday = build_finalize_yesterday_schedule()

schedules = [finalize_yesterday]
sensors = [kustomer_changes, default_automation_condition_sensor]
