"""One daily-partitioned Delta asset per entity spec, built from the spec table.

The asset plans the run's windows and reports; `load` fetches and writes one window; parsing
lives in `records`, HTTP in `kustomer`, Delta in `lake`. A run over a partition range
(single-run backfill) is cut into windows of `WINDOW_DAYS` days: each is one search window
sequence (far fewer requests than a run per day) and one Delta commit that records the run in
its note, so a retried backfill skips the windows its earlier attempt finished.
"""

import warnings
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from kustomer_assets.assets.load import NOTE_RUN, NOTE_WINDOW, WindowLoad, load_window, window_key
from kustomer_assets.entities import (
    CONVERSATIONS,
    ENTITIES,
    EntitySpec,
    ResponseByIdSource,
    SearchSource,
)
from kustomer_assets.kustomer import KustomerError, KustomerPermissionError
from kustomer_assets.kustomer.resource import KustomerResource
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets.partitions import daily_partitions

# BackfillPolicy is "beta" in 1.13 but is what makes a UI/CLI range one run; the warning would
# otherwise print once per asset on every code load.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")

RAW_GROUP = "kustomer_raw"
KUSTOMER_POOL = "kustomer_api"
"""Dagster concurrency pool shared by every asset that calls Kustomer, so parallel runs stay
inside the org's rate limit (set its limit in the instance: `dagster instance concurrency`)."""

WINDOW_DAYS = 7
"""Days per window of a range run: the unit of commit, of retry and of progress reporting."""

SEARCH_HORIZON = timedelta(days=730)
"""Kustomer search covers only objects updated in the past two years (API notes)."""

OWNERS = ["team:feedback-analytics"]

SNAPSHOT_DAYS = (date(1970, 1, 1), date(2200, 1, 1))
"""Snapshot entities replace every day: the whole list is read on every run."""

TOGGLE_VARIABLES = {
    "ingest_messages": "KUSTOMER_INGEST_MESSAGES",
    "fetch_csat_responses": "KUSTOMER_FETCH_CSAT_RESPONSES",
}


def table_schema(spec: EntitySpec, columns: dict[str, str] | None = None) -> dg.TableSchema:
    """Column schema for the UI: the spec's described columns, then any discovered ones."""
    described = {c.name: c for c in spec.columns}
    names = list(columns) if columns else [c.name for c in spec.columns]
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=name,
                type=(columns or {}).get(name) or str(described[name].dtype),
                description=(
                    described[name].description
                    if name in described
                    else "Custom attribute, typed by its name's suffix."
                    if name.startswith("custom_")
                    else None
                ),
            )
            for name in names
        ]
    )


def _check_search_horizon(spec: EntitySpec, start: datetime) -> None:
    if isinstance(spec.source, SearchSource) and start < datetime.now(UTC) - SEARCH_HORIZON:
        raise dg.Failure(
            f"{spec.name}: partitions before {(datetime.now(UTC) - SEARCH_HORIZON).date()} are "
            "outside Kustomer search's two-year window; older history needs Kustomer's Archive "
            "Search API, which this connector does not read. Backfill a later range."
        )


def build_entity_asset(spec: EntitySpec) -> dg.AssetsDefinition:
    """The asset for one entity spec."""

    upstream = [CONVERSATIONS.name] if isinstance(spec.source, ResponseByIdSource) else []
    if spec.reference:
        upstream.append(spec.reference.table)

    @dg.asset(
        name=spec.name,
        description=spec.description,
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=RAW_GROUP,
        kinds={"kustomer", "delta", "polars"},
        owners=OWNERS,
        pool=KUSTOMER_POOL,
        deps=upstream or None,
        metadata={
            "dagster/column_schema": table_schema(spec),
            "kustomer/role": spec.role,
            "kustomer/role_required": spec.required,
        },
    )
    def _entity_asset(
        context: dg.AssetExecutionContext,
        kustomer: KustomerResource,
        lake: DeltaLakeResource,
    ) -> dg.MaterializeResult:
        window = context.partition_time_window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        log = context.log
        if spec.toggle and not getattr(kustomer, spec.toggle):
            reason = f"disabled by {TOGGLE_VARIABLES.get(spec.toggle, spec.toggle)}=false"
            log.info("%s: %s; nothing fetched", spec.name, reason)
            return dg.MaterializeResult(
                metadata={"dagster/row_count": 0, "skipped": True, "reason": reason}
            )
        _check_search_horizon(spec, start)
        store = lake.store()
        # A re-execution of a failed run shares the root run id: windows it finished are kept.
        run = context.run.tags.get("dagster/root_run_id", context.run.run_id)
        finished = {
            note[NOTE_WINDOW]: note for note in store.commit_notes(spec.name, NOTE_RUN, run)
        }
        plan = plan_windows(spec, start, end)
        loads: list[WindowLoad] = []
        with kustomer.client(logger=log) as client:
            try:
                for number, (days, window_start, window_end) in enumerate(plan, start=1):
                    key = window_key(*days)
                    if key in finished:
                        loads.append(WindowLoad.from_note(finished[key]))
                        log.info("%s %s: written by an earlier attempt, skipped", spec.name, key)
                        continue
                    load = load_window(
                        spec, client, store, days, window_start, window_end, run, log
                    )
                    loads.append(load)
                    log.info(
                        "%s window %d/%d %s: %d rows (API reported %s); %s; org budget left %s",
                        spec.name,
                        number,
                        len(plan),
                        key,
                        load.rows,
                        load.reported_total,
                        client.stats.as_dict(),
                        client.budget.last_remaining,
                    )
            except KustomerPermissionError as error:
                if spec.required:
                    raise dg.Failure(str(error)) from None
                log.warning("%s skipped: %s", spec.name, error)
                return _skipped_result(spec, error, client.stats.as_dict())
            except KustomerError as error:
                # Our errors are already redacted and say what to do; drop the chained
                # httpx exception so no request detail reaches the run log.
                raise dg.Failure(f"{spec.name}: {error}") from None
            stats = client.stats.as_dict()
        return dg.MaterializeResult(
            metadata=_metadata(spec, store.uri(spec.name), loads, stats, start, end)
        )

    return _entity_asset


def plan_windows(
    spec: EntitySpec, start: datetime, end: datetime
) -> list[tuple[tuple[date, date], datetime, datetime]]:
    """(days to replace, fetch start, fetch end) per window of the run.

    Snapshot entities are one window over every day; the others are cut into `WINDOW_DAYS`.
    """
    if spec.is_snapshot:
        return [(SNAPSHOT_DAYS, start, end)]
    windows = []
    cursor = start
    while cursor < end:
        stop = min(cursor + timedelta(days=WINDOW_DAYS), end)
        windows.append(((cursor.date(), stop.date()), cursor, stop))
        cursor = stop
    return windows


def _metadata(
    spec: EntitySpec,
    uri: str,
    loads: list[WindowLoad],
    stats: dict[str, int | float],
    start: datetime,
    end: datetime,
) -> dict[str, object]:
    rows_per_day: dict[str, int] = {}
    for load in loads:
        rows_per_day.update(load.rows_per_day)
    totals = [load.reported_total for load in loads]
    columns: dict[str, str] = {}
    for load in loads:
        columns.update(load.columns)
    metadata: dict[str, object] = {
        "dagster/row_count": sum(load.rows for load in loads),
        "dagster/uri": uri,
        "rows_per_day": dg.MetadataValue.json(dict(sorted(rows_per_day.items()))),
        "api_reported_total": None if None in totals else sum(t or 0 for t in totals),
        "records_fetched": sum(load.records_fetched for load in loads),
        "duplicates_dropped": sum(load.duplicates_dropped for load in loads),
        "rows_outside_window": sum(load.rows_outside_window for load in loads),
        "not_found": sum(load.not_found for load in loads),
        "windows": len(loads),
        "windows_resumed": sum(load.resumed for load in loads),
        "delta_version": max((load.delta_version or -1 for load in loads), default=None),
        "snapshot": spec.is_snapshot,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
    }
    if columns:
        metadata["dagster/column_schema"] = table_schema(spec, columns)
    metadata.update({f"kustomer/{k}": v for k, v in stats.items()})
    return metadata


def _skipped_result(
    spec: EntitySpec, error: KustomerPermissionError, stats: dict[str, int | float]
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": 0,
            "skipped": True,
            "missing_role": error.role or spec.role,
            "reason": str(error),
            **{f"kustomer/{k}": v for k, v in stats.items()},
        }
    )


entity_assets = [build_entity_asset(spec) for spec in ENTITIES]
