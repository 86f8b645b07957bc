"""One daily-partitioned Delta asset per entity spec, built from the spec table.

The asset plans the run's windows and reports; `load` fetches and writes one window; parsing
lives in `records`, HTTP in `kustomer`, Delta in `lake`. A run over a partition range
(single-run backfill) is cut into windows of `WINDOW_DAYS` days: each is one search window
sequence (far fewer requests than a run per day) and one Delta commit that records the run in
its note, so a retried backfill skips the windows its earlier attempt finished.
"""

import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from kustomer_assets.assets import background
from kustomer_assets.assets.column_schema import table_schema
from kustomer_assets.assets.load import NOTE_RUN, NOTE_WINDOW, WindowLoad, load_window, window_key
from kustomer_assets.assets.progress import RunProgress, plural, run_progress
from kustomer_assets.assets.references import is_references, load_references, references_key
from kustomer_assets.checks.key_check.probes import role_required
from kustomer_assets.entities import ENTITIES, EntitySpec
from kustomer_assets.kustomer import KustomerClient, KustomerError, KustomerPermissionError
from kustomer_assets.kustomer.resource import KustomerResource
from kustomer_assets.lake import DeltaStore, StorageRootError
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets.org import DEFAULT_ORG, RAW_GROUP, Org
from kustomer_assets.partitions import daily_partitions
from kustomer_assets.run_recovery import record_run_worker
from kustomer_assets.run_report import RunReport, SkippedRun

# BackfillPolicy is "beta" in 1.13 but is what makes a UI/CLI range one run; the warning would
# otherwise print once per asset on every code load.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")


WINDOW_DAYS = 7
"""Days per window of a range run: the unit of commit, of retry and of progress reporting."""

SEARCH_HORIZON = timedelta(days=730)
"""Kustomer search covers only objects updated in the past two years (API notes)."""

OWNERS = ["team:feedback-analytics"]

SNAPSHOT_DAYS = (date(1970, 1, 1), date(2200, 1, 1))
"""Snapshot entities replace every day: the whole list is read on every run."""


def _check_search_horizon(spec: EntitySpec, start: datetime) -> None:
    if spec.is_searched and start < datetime.now(UTC) - SEARCH_HORIZON:
        raise dg.Failure(
            f"{spec.name}: partitions before {(datetime.now(UTC) - SEARCH_HORIZON).date()} are "
            "outside Kustomer search's two-year window; older history needs Kustomer's Archive "
            "Search API, which this connector does not read. Backfill a later range."
        )


def switched_off_reason(spec: EntitySpec, kustomer: KustomerResource) -> str | None:
    """Why the user's settings leave `spec` out of this run, or None when it is in."""
    if spec.toggle is None or not spec.switched_off(kustomer.switched_off):
        return None
    return f"disabled by {spec.toggle.env}=false"


def build_entity_asset(
    spec: EntitySpec, entities: tuple[EntitySpec, ...] = ENTITIES, org: Org = DEFAULT_ORG
) -> dg.AssetsDefinition:
    """The asset for one entity spec; `entities` is the table it belongs to (progress counts
    the windows of every table of the run), `org` names its key, resources and pool."""

    upstream = org.asset_keys(spec.follows)

    @dg.asset(
        key=org.asset_key(spec.name),
        description=spec.description,
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=org.group_name(RAW_GROUP),
        kinds={"kustomer", "delta", "polars"},
        owners=OWNERS,
        pool=org.pool,
        deps=upstream or None,
        required_resource_keys={org.kustomer_key, org.lake_key},
        metadata={
            "dagster/column_schema": table_schema(spec),
            "kustomer/role": spec.role,
            "kustomer/role_required": spec.required,
        },
    )
    def _entity_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        kustomer, lake = org.kustomer(context), org.lake(context)
        record_run_worker(context, org.prefix)  # lets a killed run be told from a live one
        window = context.partition_time_window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        log = context.log
        reason = switched_off_reason(spec, kustomer)
        if reason is not None:
            log.info("%s: %s; nothing fetched", spec.name, reason)
            return _per_partition(context, SkippedRun(reason).to_metadata())
        _check_search_horizon(spec, start)
        with one_sentence_failures(spec.name, kustomer, lake):
            store = lake.store()
            store.check()  # a bad KUSTOMER_DELTA_ROOT fails before any request is spent
            loads, stats, skipped = _loaded(
                spec, entities, org, context, kustomer, store, start, end
            )
        if skipped is not None:
            return _per_partition(context, _skipped_metadata(spec, skipped, stats))
        rows_per_day: dict[str, int] = {}
        for load in loads:
            rows_per_day.update(load.rows_per_day)
        return _per_partition(
            context,
            _metadata(spec, store.uri(spec.name), loads, stats, start, end),
            rows_per_day,
        )

    return _entity_asset


Loaded = tuple[list[WindowLoad], dict[str, int | float], KustomerPermissionError | None]
"""The loads, the client's counters, and the permission error when an optional role is
missing (the entity is then skipped, not failed)."""


def _loaded(
    spec: EntitySpec,
    entities: tuple[EntitySpec, ...],
    org: Org,
    context: dg.AssetExecutionContext,
    kustomer: KustomerResource,
    store: DeltaStore,
    start: datetime,
    end: datetime,
) -> Loaded:
    """The entity's windows: loaded by its background thread if one ran (see `background`),
    else here; then the by-id entities that take their ids from it start in the background."""
    finished = background.take(context, org, spec)
    if finished is not None:
        if finished.error is None:
            return finished.result
        context.log.warning(
            "%s: its background load failed, so this step loads the windows that load did "
            "not finish. What failed: %s",
            spec.name,
            kustomer.explain(finished.error),
        )
    result = _load_windows(spec, entities, org, context, kustomer, store, start, end)
    if result[2] is None:
        started = background.start_dependents(
            spec,
            entities,
            org,
            context,
            wanted=lambda dependent: switched_off_reason(dependent, kustomer) is None,
            load=lambda dependent, log: _load_windows(
                dependent, entities, org, context, kustomer, store, start, end, log
            ),
        )
        if started:
            context.log.info(
                "%s: loading %s in the background while the other steps run",
                spec.name,
                ", ".join(started),
            )
    return result


def _load_windows(
    spec: EntitySpec,
    entities: tuple[EntitySpec, ...],
    org: Org,
    context: dg.AssetExecutionContext,
    kustomer: KustomerResource,
    store: DeltaStore,
    start: datetime,
    end: datetime,
    log: Any = None,
) -> Loaded:
    """Load every window of the run that an earlier attempt did not finish; `log`: where its
    lines go (the step's log unless a background thread loads)."""
    log = log or context.log
    # A re-execution of a failed run shares the root run id: windows it finished are kept.
    run = context.run.tags.get("dagster/root_run_id", context.run.run_id)
    finished = {note[NOTE_WINDOW]: note for note in store.commit_notes(spec.name, NOTE_RUN, run)}
    plan = plan_windows(spec, start, end)
    # Keyed by org too: a run over two orgs' assets counts each org's windows apart.
    progress = run_progress(
        f"{context.run.run_id}/{org.prefix}",
        lambda: _run_window_count(entities, org, context, kustomer, start, end),
    )
    loads: list[WindowLoad] = []
    with kustomer.client(logger=log) as client:
        try:
            for number, (days, window_start, window_end) in enumerate(plan, start=1):
                key = window_key(*days)
                if key in finished:
                    loads.append(WindowLoad.from_note(finished[key]))
                    progress.window_done(loads[-1].rows, 0, resumed=True)
                    log.info("%s %s: written by an earlier attempt, skipped", spec.name, key)
                    continue
                requests_before = client.stats.requests
                load = load_window(spec, client, store, days, window_start, window_end, run, log)
                loads.append(load)
                requests = client.stats.requests - requests_before
                progress.window_done(load.rows, requests)
                log.info(
                    "%s", window_line(spec, number, len(plan), load, requests, client, progress)
                )
            if spec.reference is not None:
                loads.append(_load_references(spec, client, store, start, end, run, finished, log))
        except KustomerPermissionError as error:
            # A missing search role blocks every searched entity, optional ones included.
            if spec.required or role_required(error.role or "", entities):
                raise
            progress.windows_dropped(len(plan) - len(loads))
            log.warning("%s skipped: %s", spec.name, error)
            return loads, client.stats.as_dict(), error
        return loads, client.stats.as_dict(), None


def _load_references(
    spec: EntitySpec,
    client: KustomerClient,
    store: DeltaStore,
    start: datetime,
    end: datetime,
    run: str,
    finished: dict[str, dict],
    log: Any,
) -> WindowLoad:
    """The referenced records no window of the run brought, once after them all (skipped when
    an earlier attempt of the run got that far)."""
    key = references_key(start, end)
    if key in finished:
        log.info("%s %s: written by an earlier attempt, skipped", spec.name, key)
        return WindowLoad.from_note(finished[key])
    requests_before = client.stats.requests
    searchable_since = datetime.now(UTC) - SEARCH_HORIZON + timedelta(days=1)
    load = load_references(spec, client, store, start, end, run, log, searchable_since)
    if load.records_fetched or load.not_found:
        log.info(
            "%s %s: %s merged into their own days (%s not found), %s",
            spec.name,
            key,
            plural(load.records_fetched, "referenced record"),
            load.not_found,
            plural(client.stats.requests - requests_before, "request"),
        )
    return load


def window_line(
    spec: EntitySpec,
    number: int,
    windows: int,
    load: WindowLoad,
    requests: int,
    client: KustomerClient,
    progress: RunProgress,
) -> str:
    """The one line per window: its own figures first, then the whole run's, so a long
    backfill says both what it just did and how far it is. The demo reads it back with
    `progress.WINDOW_LINE`: change the two together."""
    days = "snapshot" if spec.is_snapshot else load.window
    line = f"{spec.name} window {number}/{windows} {days}: {plural(load.rows, 'row')}, "
    line += plural(requests, "request")
    if load.reported_total is not None:
        counted = f"API counted {load.reported_total:,}"
        if load.api_count_after not in (None, load.reported_total):
            counted += f", {load.api_count_after:,} after"
        if load.changed_during_run:
            counted += f"; {load.changed_during_run:,} changed while paging"
        line += f" ({counted}; verified by {load.verified_by or '-'})"
    stats = client.stats
    if stats.retries or stats.rate_limit_waits:
        line += (
            f"; this table so far {plural(stats.retries, 'retry', 'retries')}, "
            f"{plural(stats.rate_limit_waits, 'budget wait')} ({stats.wait_seconds:.0f} s)"
        )
    return f"{line}; {client.budget.describe_remaining()}; {progress.describe()}"


def _run_window_count(
    entities: tuple[EntitySpec, ...],
    org: Org,
    context: dg.AssetExecutionContext,
    kustomer: KustomerResource,
    start: datetime,
    end: datetime,
) -> int:
    """Windows of every raw table this run will load: each shares the run's partition range."""
    # No selection: the whole asset job, i.e. every table.
    selected = context.run.asset_selection or set(org.asset_keys(s.name for s in entities))
    steps = context.run.step_keys_to_execute  # a re-execution from failure runs only these
    return sum(
        len(plan_windows(spec, start, end))
        for spec in entities
        if org.asset_key(spec.name) in selected
        and (steps is None or background.step_key(org, spec) in steps)
        and switched_off_reason(spec, kustomer) is None
    )


@contextmanager
def one_sentence_failures(
    asset: str, kustomer: KustomerResource | None = None, lake: DeltaLakeResource | None = None
) -> Iterator[None]:
    """Turn our errors into a `dg.Failure` whose description is the one sentence that says
    what to fix, so the UI and the CLI show it first, with the facts as metadata.

    Our errors are already redacted; the chained httpx or delta-rs exception is dropped so no
    request detail reaches the run log."""
    try:
        yield
    except (KustomerError, StorageRootError) as error:
        metadata: dict[str, object] = {"error": type(error).__name__}
        for name in ("status", "method", "endpoint", "role"):
            value = getattr(error, name, None)
            if value is not None:
                metadata[name] = value
        sentence = str(error)
        for resource in (kustomer, lake):
            sentence = resource.explain(sentence) if resource is not None else sentence
        raise dg.Failure(description=f"{asset}: {sentence}", metadata=metadata) from None


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
    """The run's `RunReport` (over every window, resumed ones included) as metadata."""
    rows_per_day: dict[str, int] = {}
    columns: dict[str, str] = {}
    for load in loads:
        rows_per_day.update(load.rows_per_day)
        columns.update(load.columns)
    windows = [load for load in loads if not is_references(load)]
    totals = [load.reported_total for load in windows]
    report = RunReport(
        rows_written=sum(load.rows for load in loads),
        rows_per_day=rows_per_day,
        api_reported_total=None if None in totals else sum(t or 0 for t in totals),
        records_fetched=sum(load.records_fetched for load in loads),
        duplicates_dropped=sum(load.duplicates_dropped for load in loads),
        rows_outside_window=sum(load.rows_outside_window for load in loads),
        not_found=sum(load.not_found for load in loads),
        api_count_after=_sum_or_none(load.api_count_after for load in windows),
        changed_during_run=sum(load.changed_during_run for load in loads),
        refetched_after_id_check=sum(load.refetched for load in loads),
        ids_unaccounted=sum(load.unaccounted for load in loads),
        verified_by=", ".join(sorted({load.verified_by for load in loads if load.verified_by}))
        or "-",
        rows_with_unparsed_values=sum(load.unparsed_rows for load in loads),
        schema_changes=sorted({change for load in loads for change in load.schema_changes}),
        commit_retries=sum(load.commit_retries for load in loads),
        windows=len(windows),
        windows_resumed=sum(load.resumed for load in windows),
        delta_version=max((load.delta_version or -1 for load in loads), default=None),
        window_start=start,
        window_end=end,
        client=dict(stats),
    )
    metadata: dict[str, object] = {
        "dagster/uri": uri,
        "snapshot": spec.is_snapshot,
        **report.to_metadata(),
    }
    if columns:
        metadata["dagster/column_schema"] = table_schema(spec, columns)
    return metadata


def _per_partition(
    context: dg.AssetExecutionContext,
    metadata: dict[str, object],
    rows_per_day: dict[str, int] | None = None,
) -> dg.MaterializeResult:
    """The run's figures on every partition, and on each partition its own day's row count (a
    snapshot's too: the rows whose last update fell on that day), so the UI's plots are true."""
    for key in context.partition_keys:
        context.add_asset_metadata(
            {"dagster/row_count": (rows_per_day or {}).get(key, 0)}, partition_key=key
        )
    return dg.MaterializeResult(metadata=metadata)


def _sum_or_none(values: Iterable[int | None]) -> int | None:
    items = list(values)
    return None if not items or None in items else sum(v or 0 for v in items)


def _skipped_metadata(
    spec: EntitySpec, error: KustomerPermissionError, stats: dict[str, int | float]
) -> dict[str, object]:
    skipped = SkippedRun(reason=str(error), missing_role=error.role or spec.role, client=stats)
    return skipped.to_metadata()


def build_entity_assets(
    entities: tuple[EntitySpec, ...] = ENTITIES, org: Org = DEFAULT_ORG
) -> list[dg.AssetsDefinition]:
    """One asset per entry of the spec table."""
    return [build_entity_asset(spec, entities, org) for spec in entities]


entity_assets = build_entity_assets()
