"""One daily-partitioned Delta asset per entity spec: fetch a window, map rows, replace days.

The asset body only wires a spec to the client and to the lake: parsing lives in `records`,
HTTP in `kustomer`, Delta in `lake`. A run over a partition range (single-run backfill) fetches
the whole range in one search window sequence, which costs far fewer requests than a run per day.
"""

import warnings
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from kustomer_assets.assets.lookups import csat_response_ids, missing_references
from kustomer_assets.entities import (
    CONVERSATIONS,
    ENTITIES,
    EntitySpec,
    ResponseByIdSource,
    SearchSource,
)
from kustomer_assets.extract import WindowFetch
from kustomer_assets.kustomer import KustomerError, KustomerPermissionError
from kustomer_assets.kustomer.resource import KustomerResource
from kustomer_assets.lake.partitions import WriteSummary
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets.partitions import daily_partitions

# BackfillPolicy is "beta" in 1.13 but is what makes a UI/CLI range one run; the warning would
# otherwise print once per asset on every code load.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")

RAW_GROUP = "kustomer_raw"
KUSTOMER_POOL = "kustomer_api"
"""Dagster concurrency pool shared by every asset that calls Kustomer, so parallel runs stay
inside the org's rate limit (set its limit in the instance: `dagster instance concurrency`)."""

BATCH_RECORDS = 5_000
"""Records mapped and staged per batch: bounds memory whatever the size of the history."""

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

    by_id = isinstance(spec.source, ResponseByIdSource)
    upstream = [CONVERSATIONS.name] if by_id else []
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
        first_day, end_day = SNAPSHOT_DAYS if spec.is_snapshot else (start.date(), end.date())
        ids = csat_response_ids(store, start, end) if by_id else []
        with kustomer.client(logger=log) as client:
            fetch = WindowFetch(spec, client, start, end, ids=ids)
            fetched_ids: set[str] = set()
            try:
                with store.replace_days(
                    spec.name, first_day, end_day, spec.mapper.base_schema
                ) as days:
                    batch: list[dict] = []

                    def stage() -> None:
                        days.add(spec.mapper.frame(batch))
                        batch.clear()

                    for pages, page in enumerate(fetch, start=1):
                        batch.extend(page)
                        fetched_ids.update(record["id"] for record in page)
                        if len(batch) >= BATCH_RECORDS:
                            stage()
                        if pages % 20 == 0:
                            log.info(
                                "%s: %d pages, %d records so far; %s",
                                spec.name,
                                pages,
                                fetch.records,
                                client.stats.as_dict(),
                            )
                    stage()
                    if spec.reference:
                        missing = missing_references(
                            store, spec.name, spec.reference, start, end, fetched_ids
                        )
                        log.info(
                            "%s: fetching %d referenced by %s but not stored yet",
                            spec.name,
                            len(missing),
                            spec.reference.table,
                        )
                        for page in fetch.by_ids(spec.reference.path_template, missing):
                            batch.extend(page)
                            if len(batch) >= BATCH_RECORDS:
                                stage()
                        stage()
                    summary = days.commit()
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
        log.info(
            "%s: wrote %d rows over %s..%s (API reported %s); %s",
            spec.name,
            summary.rows,
            first_day,
            end_day,
            fetch.reported_total,
            stats,
        )
        return dg.MaterializeResult(
            metadata=_metadata(spec, store.uri(spec.name), summary, fetch, stats)
        )

    return _entity_asset


def _metadata(
    spec: EntitySpec,
    uri: str,
    summary: WriteSummary,
    fetch: WindowFetch,
    stats: dict[str, int | float],
) -> dict[str, object]:
    metadata: dict[str, object] = {
        "dagster/row_count": summary.rows,
        "dagster/column_schema": table_schema(spec, summary.columns),
        "dagster/uri": uri,
        "rows_per_day": dg.MetadataValue.json(summary.rows_per_day),
        "api_reported_total": fetch.reported_total,
        "records_fetched": fetch.records,
        "duplicates_dropped": summary.duplicates_dropped,
        "delta_version": summary.table_version,
        "snapshot": spec.is_snapshot,
        "not_found": fetch.not_found,
        "rows_outside_window": summary.rows_outside_window,
        "window_start": fetch.start.isoformat(),
        "window_end": fetch.end.isoformat(),
    }
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
