"""How recent the Kustomer tables are: the asset-level freshness policy and a per-day check.

Dagster's `FreshnessPolicy` judges an asset as a whole: any materialization counts, so a
backfill of a day from last year makes a daily-partitioned table look fresh while today's data
is missing. Analysts mostly read today and yesterday, so `partition_fresh` looks at exactly
those two partitions, using the instance's latest materialization of each.

Both use the same windows, read from the environment when the code location loads:
KUSTOMER_FRESHNESS_WARN_HOURS (default 26: a daily load plus two hours of slack) and
KUSTOMER_FRESHNESS_FAIL_HOURS (default 50: two missed daily loads).
"""

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from kustomer_assets.environment import positive_float_env

ENV_WARN_HOURS = "KUSTOMER_FRESHNESS_WARN_HOURS"
ENV_FAIL_HOURS = "KUSTOMER_FRESHNESS_FAIL_HOURS"
DEFAULT_WARN_HOURS = 26.0
DEFAULT_FAIL_HOURS = 50.0

PARTITION_FRESH = "partition_fresh"
FRESHNESS_CHECK_CRON = "0 * * * *"
"""`partition_fresh` also runs hourly on its own (through the automation condition sensor),
because a check that only runs with its asset can never notice that the asset stopped running."""


@dataclass(frozen=True)
class FreshnessWindows:
    """Age after which a table or a partition is reported late (`warn`) or failed (`fail`)."""

    warn: timedelta
    fail: timedelta


def freshness_windows() -> FreshnessWindows:
    """Windows from KUSTOMER_FRESHNESS_WARN_HOURS / KUSTOMER_FRESHNESS_FAIL_HOURS."""
    warn = positive_float_env(ENV_WARN_HOURS, DEFAULT_WARN_HOURS, "hours")
    fail = positive_float_env(ENV_FAIL_HOURS, DEFAULT_FAIL_HOURS, "hours")
    if warn > fail:
        raise ValueError(
            f"{ENV_WARN_HOURS} ({warn:g}) must not exceed {ENV_FAIL_HOURS} ({fail:g}): a table "
            "is reported late before it is reported failed."
        )
    return FreshnessWindows(warn=timedelta(hours=warn), fail=timedelta(hours=fail))


def freshness_policy(windows: FreshnessWindows | None = None) -> dg.FreshnessPolicy:
    """The policy for every raw Kustomer asset and for `feedback`.

    Apply it in one place, e.g. in definitions.py:
    `dg.map_asset_specs(lambda s: s.replace_attributes(freshness_policy=freshness_policy()),
    assets)` (keeps partitions and the backfill policy), or `freshness_policy=` on `@dg.asset`.
    """
    windows = windows or freshness_windows()
    return dg.FreshnessPolicy.time_window(fail_window=windows.fail, warn_window=windows.warn)


def latest_materializations(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Collection[str]
) -> dict[str, dg.EventLogRecord]:
    """The instance's latest materialization of each partition (absent: never materialized).

    A single-run backfill records one materialization per partition, all from the same run and
    with the same metadata, so the record also tells which run last wrote a day.
    """
    if not partitions:
        return {}
    storage_ids = instance.get_latest_storage_id_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(partitions)
    )
    if not storage_ids:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(storage_ids.values())),
        limit=len(storage_ids),
    ).records
    by_id = {record.storage_id: record for record in records}
    return {p: by_id[s] for p, s in storage_ids.items() if s in by_id}


def day_start(day: date) -> datetime:
    """00:00 UTC of a day."""
    return datetime.combine(day, datetime.min.time(), UTC)


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def partition_fresh_check(
    asset_key: dg.AssetKey,
    windows: FreshnessWindows | None = None,
    clock: Callable[[], float] = time.time,
) -> dg.AssetChecksDefinition:
    """`partition_fresh` for one daily-partitioned asset (today's and yesterday's partitions).

    A loaded partition warns when its latest materialization is older than `windows.warn` and
    fails after `windows.fail`. A partition never loaded is measured from the start of its day
    and fails as soon as that exceeds `windows.warn` (there is no data at all, not old data):
    today's partition is not reported at 00:05 because nothing ran yet, but yesterday's is at
    02:00 (default windows) if even the nightly finalization did not load it. `clock` lets
    tests move time.
    """
    windows = windows or freshness_windows()
    warn_h, fail_h = _hours(windows.warn), _hours(windows.fail)

    @dg.asset_check(
        asset=asset_key,
        name=PARTITION_FRESH,
        blocking=False,
        automation_condition=dg.AutomationCondition.cron_tick_passed(FRESHNESS_CHECK_CRON, "UTC"),
        description=(
            f"Today's and yesterday's partitions (UTC days) were loaded recently: warns when "
            f"either was last loaded more than {warn_h:g} h ago and fails after {fail_h:g} h; "
            f"fails when a day that began more than {warn_h:g} h ago was never loaded. The "
            "table-wide freshness policy cannot see this, since loading any old day makes the "
            "whole table look fresh. If it fails, check the kustomer_changes sensor and the "
            "finalize_yesterday schedule."
        ),
    )
    def _partition_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        now = datetime.fromtimestamp(clock(), UTC)
        days = [now.date() - timedelta(days=1), now.date()]
        keys = [d.isoformat() for d in days]
        latest = latest_materializations(context.instance, asset_key, keys)
        worst = 0  # 0 fresh, 1 late (warn), 2 stale (fail)
        ages: dict[str, float] = {}
        loaded_at: dict[str, str | None] = {}
        never: list[str] = []
        for day, key in zip(days, keys, strict=True):
            record = latest.get(key)
            if record is None:
                never.append(key)
                since = day_start(day)
                loaded_at[key] = None
            else:
                since = datetime.fromtimestamp(record.timestamp, UTC)
                loaded_at[key] = since.isoformat(timespec="seconds")
            age = max(now - since, timedelta(0))
            ages[key] = _hours(age)
            if record is None:
                level = 2 if age > windows.warn else 0
            else:
                level = 2 if age > windows.fail else 1 if age > windows.warn else 0
            worst = max(worst, level)
        summary = ", ".join(
            f"{key}: {'never loaded, ' if key in never else ''}{ages[key]:g} h old" for key in keys
        )
        return dg.AssetCheckResult(
            passed=worst == 0,
            severity=dg.AssetCheckSeverity.ERROR if worst == 2 else dg.AssetCheckSeverity.WARN,
            description=summary,
            metadata={
                "age_hours": ages,
                "last_loaded_at": loaded_at,
                "never_loaded": never,
                "warn_after_hours": warn_h,
                "fail_after_hours": fail_h,
                "evaluated_at": now.isoformat(timespec="seconds"),
            },
        )

    return _partition_fresh


def partition_fresh_checks(
    asset_keys: Iterable[dg.AssetKey],
    windows: FreshnessWindows | None = None,
    clock: Callable[[], float] = time.time,
) -> list[dg.AssetChecksDefinition]:
    """`partition_fresh` for each key (the daily-partitioned raw assets)."""
    windows = windows or freshness_windows()
    return [partition_fresh_check(key, windows, clock) for key in asset_keys]
