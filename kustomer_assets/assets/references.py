"""Records other tables point at that no window of the run brought: fetched once, at the end.

A range run loads customers window by window. Conversations of its first window often point at
customers last updated in a later window, whose search brings them anyway; fetching them by id
per window paid for them twice (and wrote them twice). So the referenced records still missing
after *every* window of the run are fetched then, and only those.

When many are missing, a search sweep over the time the run does not cover can cost less than
one GET each: a page holds 500 records, but searches have their own, smaller budget. The sweep's
size is known from one count request per span, so the cheaper of the two (in minutes of the
budget it spends) is taken and the log says which. The sweep keeps only the missing ids, so the
table holds exactly what GETs would have brought; ids it does not find are fetched by id.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kustomer_assets.assets.load import (
    ByIdProgress,
    RecordBatches,
    WindowLoad,
    window_key,
)
from kustomer_assets.assets.lookups import missing_references
from kustomer_assets.entities import EntitySpec, SearchSource
from kustomer_assets.extract import WindowFetch
from kustomer_assets.kustomer import KustomerClient
from kustomer_assets.lake import DeltaStore

REFERENCES = "references"
"""Window name prefix of the load that fetches referenced records after the run's windows."""

SEARCHES_PER_SPAN = 3
"""A sweep span costs at least its count, one page and the count that proves it complete."""


def references_key(start: datetime, end: datetime) -> str:
    return f"{REFERENCES}:{window_key(start.date(), end.date())}"


def is_references(load: WindowLoad) -> bool:
    return load.window.startswith(f"{REFERENCES}:")


@dataclass(frozen=True)
class FetchPlan:
    """How the missing records are fetched: `spans` to sweep by search (empty: by id only)."""

    missing: int
    spans: tuple[tuple[datetime, datetime], ...] = ()
    sweep_searches: int = 0
    reason: str = ""

    @property
    def by_search(self) -> bool:
        return bool(self.spans)


def plan_fetch(
    client: KustomerClient,
    spec: EntitySpec,
    missing: int,
    start: datetime,
    end: datetime,
    searchable_since: datetime,
) -> FetchPlan:
    """GETs, or a sweep of the searchable time outside `[start, end)` when that is cheaper.

    Costs are in minutes of budget: GETs take `missing / org_rpm`, a sweep takes its searches
    (counts, pages, proofs) `/ search_rpm`. The counts are asked only when even the smallest
    sweep could win, so a handful of missing records never costs a search."""
    settings = client.settings
    now = datetime.now(UTC)
    spans = tuple((s, e) for s, e in ((searchable_since, start), (end, now)) if s < e)
    get_minutes = missing / settings.org_requests_per_minute
    floor = SEARCHES_PER_SPAN * len(spans) / settings.search_requests_per_minute
    if not isinstance(spec.source, SearchSource) or not spans or get_minutes <= floor:
        return FetchPlan(missing, reason=f"{missing} GETs cost less than any search sweep")
    context = spec.source.query_context
    searches = len(spans)  # the counts asked now
    for span_start, span_end in spans:
        counted = client.search_window(context, span_start, span_end, role=spec.role).count()
        if counted is None:
            return FetchPlan(missing, reason="the sweep's size is unknown (no meta.total)")
        searches += math.ceil(counted / settings.search_page_size) + 1  # pages + the proof
    sweep_minutes = searches / settings.search_requests_per_minute
    if sweep_minutes >= get_minutes:
        return FetchPlan(
            missing,
            reason=f"{missing} GETs ({get_minutes:.1f} min) cost less than a {searches}-search "
            f"sweep ({sweep_minutes:.1f} min)",
        )
    return FetchPlan(
        missing,
        spans,
        searches,
        reason=f"a {searches}-search sweep ({sweep_minutes:.1f} min) costs less than {missing} "
        f"GETs ({get_minutes:.1f} min)",
    )


def load_references(
    spec: EntitySpec,
    client: KustomerClient,
    store: DeltaStore,
    start: datetime,
    end: datetime,
    run: str,
    log: logging.Logger | Any,
    searchable_since: datetime,
) -> WindowLoad:
    """Fetch what `spec.reference`'s rows of `[start, end)` point at and the table still lacks,
    and merge each record into its own day (no day is replaced)."""
    reference, path = spec.reference, spec.by_id_path
    load = WindowLoad(window=references_key(start, end))
    if reference is None or path is None:
        return load
    missing = missing_references(store, spec.name, reference, start, end, ())
    if not missing:
        return load
    plan = plan_fetch(client, spec, len(missing), start, end, searchable_since)
    what = f"records that {reference.table} points at but no window brought"
    how = "by a search sweep" if plan.by_search else "by id"
    log.info("%s: %d %s, fetched %s: %s", spec.name, len(missing), what, how, plan.reason)
    fetch = WindowFetch(spec, client, start, end)
    day = end.date()
    with store.replace_days(spec.name, day, day, spec.mapper.base_schema) as replacement:
        batch = RecordBatches(spec, replacement, load)

        wanted = set(missing)
        if plan.by_search and isinstance(spec.source, SearchSource):
            for span_start, span_end in plan.spans:
                window = client.search_window(
                    spec.source.query_context, span_start, span_end, role=spec.role
                )
                for page in window:
                    found = [record for record in page if record.get("id") in wanted]
                    wanted.difference_update(record["id"] for record in found)
                    batch.extend(found)
                    load.records_fetched += len(found)
        progress = ByIdProgress(spec.name, load.window, what, len(wanted), log)
        if wanted:
            progress.start()
        for page in fetch.by_ids(path, sorted(wanted)):
            batch.extend(page)
            progress.advance(fetch.records + fetch.not_found, client)
        batch.flush()
        load.records_fetched += fetch.records
        load.not_found = fetch.not_found
        summary = replacement.commit(note=lambda summary: load.note(run, summary))
    load.columns = summary.columns
    load.commit_retries = summary.commit_retries
    load.delta_version = summary.table_version
    return load
