"""Data-quality checks on the Kustomer tables, generated from the ENTITIES spec table.

Every raw table gets `unique_id_updated_at` and `partition_fresh`; every search-backed table
gets `complete_vs_api`; child tables get a referential check against the table they point at;
`feedback` gets `one_row_per_live_conversation`. Adding an entity to the spec table adds its
checks. All read the Delta tables through the `lake` resource with lazy polars scans, and read
what a run reported (window, `api_reported_total`, rows written) from the instance's
materializations, so a check re-run later judges the same run the asset recorded.

Per-partition results: `unique_id_updated_at` and `complete_vs_api` are partitioned checks. A
single-run backfill gives the check step a partition *range*, for which Dagster 1.13 records an
`AssetCheckResult` without any partition (not matching the per-day executions it planned), so
over a range these checks emit one `AssetCheckEvaluation` per day themselves; the UI then shows
a result on every day of the range.
"""

import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import polars as pl

# Not exported at the top level in 1.13; links a per-day evaluation to the materialization
# it judged, as Dagster does for the results it builds itself.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from kustomer_assets.checks.freshness import (
    FreshnessWindows,
    day_start,
    latest_materializations,
    partition_fresh_check,
)
from kustomer_assets.entities import (
    CONVERSATIONS,
    ENTITIES,
    ENTITIES_BY_NAME,
    EntitySpec,
    SearchSource,
)
from kustomer_assets.feedback.incremental import INPUTS as FEEDBACK_INPUT_TABLES
from kustomer_assets.lake import DeltaStore
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets.partitions import daily_partitions
from kustomer_assets.records import PARTITION_COLUMN
from kustomer_assets.removals import REMOVED_RECORDS
from kustomer_assets.run_report import run_value

ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN
SAMPLE_SIZE = 10
"""Ids shown in a failing check's metadata: enough to look a few up in Kustomer."""

FEEDBACK_KEY = dg.AssetKey("feedback")
FEEDBACK_TABLE = "feedback"


# ----------------------------------------------------------------------------- shared helpers


@dataclass(frozen=True)
class Verdict:
    """One check result for one partition, before it becomes a Dagster event."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    severity: dg.AssetCheckSeverity = ERROR
    materialization: dg.EventLogRecord | None = None


def _partitioned_check(**kwargs: Any) -> Callable[[Callable[..., Any]], dg.AssetChecksDefinition]:
    """`dg.asset_check` over the daily partitions.

    Partitioned checks are a "preview" in 1.13; dagster is pinned to 1.13.27, so a patch
    release cannot change them under us, and the warning would print once per check per load.
    """

    def decorate(fn: Callable[..., Any]) -> dg.AssetChecksDefinition:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=dg.PreviewWarning)
            return dg.asset_check(partitions_def=daily_partitions, **kwargs)(fn)

    return decorate


def _partition_keys(context: dg.AssetCheckExecutionContext) -> list[str]:
    if context.has_partition_key:
        return [context.partition_key]
    return list(context.partition_keys)


def _emit(
    context: dg.AssetCheckExecutionContext,
    asset_key: dg.AssetKey,
    check_name: str,
    verdicts: dict[str, Verdict],
) -> Iterator[Any]:
    """One result per partition: Dagster's own result for one partition, our events for a range."""
    if context.has_partition_key:
        verdict = verdicts[context.partition_key]
        yield dg.AssetCheckResult(
            passed=verdict.passed,
            severity=verdict.severity,
            description=verdict.description,
            metadata=verdict.metadata,
        )
        return
    for partition, verdict in verdicts.items():
        record = verdict.materialization
        yield dg.AssetCheckEvaluation(
            asset_key=asset_key,
            check_name=check_name,
            passed=verdict.passed,
            severity=verdict.severity,
            description=verdict.description,
            metadata=verdict.metadata,
            blocking=False,
            partition=partition,
            target_materialization_data=(
                AssetCheckEvaluationTargetMaterializationData(
                    storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
                )
                if record is not None
                else None
            ),
        )
    # The check's op still owes its (empty) output once the evaluations are out.
    yield dg.Output(None, output_name=context.op_def.output_defs[0].name)


def _metadata_values(record: dg.EventLogRecord) -> dict[str, Any]:
    materialization = record.asset_materialization
    if materialization is None:
        return {}
    return {key: value.value for key, value in materialization.metadata.items()}


def _days(first: date, end: date) -> list[date]:
    """Days in [first, end)."""
    return [first + timedelta(days=i) for i in range((end - first).days)]


def _window_bounds(metadata: dict[str, Any], fallback: str) -> tuple[datetime, datetime]:
    """The `[start, end)` a materialization covered; its own partition when not recorded."""
    start, end = run_value(metadata, "window_start"), run_value(metadata, "window_end")
    if isinstance(start, str) and isinstance(end, str):
        return datetime.fromisoformat(start), datetime.fromisoformat(end)
    day = date.fromisoformat(fallback)
    return day_start(day), day_start(day + timedelta(days=1))


def _rows_per_day(store_scan: pl.LazyFrame, first: date, end: date) -> dict[str, int]:
    counts = (
        store_scan.filter(pl.col(PARTITION_COLUMN).is_between(first, end, closed="left"))
        .group_by(PARTITION_COLUMN)
        .agg(pl.len().alias("rows"))
        .collect()
    )
    return {day.isoformat(): rows for day, rows in counts.iter_rows()}


# ----------------------------------------------------------------------------- unique versions


UNIQUE_VERSIONS = "unique_id_updated_at"


def unique_versions_check(spec: EntitySpec) -> dg.AssetChecksDefinition:
    """No two rows of one partition share `id` and `updated_at` (one row per record version)."""
    asset_key = dg.AssetKey(spec.name)
    kind = spec.kustomer_type.replace("_", " ")

    @_partitioned_check(
        asset=asset_key,
        name=UNIQUE_VERSIONS,
        blocking=False,
        description=(
            f"Each version of a {kind} appears once per day: no two rows share `id` and "
            f"`updated_at`. A duplicate would count the same {kind} twice in every total and "
            "average; re-materialize the day to rewrite it."
        ),
    )
    def _unique(context: dg.AssetCheckExecutionContext, lake: DeltaLakeResource):
        keys = _partition_keys(context)
        store = lake.store()
        if not store.exists(spec.name):
            note = f"No {spec.name} table yet (entity switched off, not permitted, or not loaded)."
            verdicts = {key: Verdict(True, note, {"rows_checked": 0}) for key in keys}
            yield from _emit(context, asset_key, UNIQUE_VERSIONS, verdicts)
            return
        days = [date.fromisoformat(key) for key in keys]
        latest = latest_materializations(context.instance, asset_key, keys)
        per_day = (
            store.scan(spec.name)
            .filter(pl.col(PARTITION_COLUMN).is_between(min(days), max(days)))
            .filter(pl.col(PARTITION_COLUMN).is_in(days))
            .group_by(PARTITION_COLUMN, "id", "updated_at")
            .agg(pl.len().alias("copies"))
            .group_by(PARTITION_COLUMN)
            .agg(
                pl.col("copies").sum().alias("rows"),
                (pl.col("copies") - 1).sum().alias("extra_rows"),
                (pl.col("copies") > 1).sum().alias("duplicated_versions"),
                pl.col("id").filter(pl.col("copies") > 1).sort().head(SAMPLE_SIZE).alias("sample"),
            )
            .collect()
        )
        found = {row[PARTITION_COLUMN].isoformat(): row for row in per_day.iter_rows(named=True)}
        verdicts: dict[str, Verdict] = {}
        for key in keys:
            row = found.get(key) or {
                "rows": 0,
                "extra_rows": 0,
                "duplicated_versions": 0,
                "sample": [],
            }
            extra = int(row["extra_rows"])
            verdicts[key] = Verdict(
                passed=extra == 0,
                description=(
                    f"{key}: {row['duplicated_versions']} {kind} versions appear more than once "
                    f"({extra} surplus rows)."
                    if extra
                    else f"{key}: {row['rows']} rows, each (id, updated_at) once."
                ),
                materialization=latest.get(key),
                metadata={
                    "rows_checked": int(row["rows"]),
                    "duplicate_rows": extra,
                    "duplicated_versions": int(row["duplicated_versions"]),
                    "sample_ids": list(row["sample"] or []),
                },
            )
        yield from _emit(context, asset_key, UNIQUE_VERSIONS, verdicts)

    return _unique


# ----------------------------------------------------------------------------- completeness


COMPLETE_VS_API = "complete_vs_api"


def complete_vs_api_check(spec: EntitySpec) -> dg.AssetChecksDefinition:
    """Every record Kustomer holds for a run's window was read (proven by ids, or by counts that
    did not move), and the table still holds what the run wrote for those days."""
    asset_key = dg.AssetKey(spec.name)
    kind = spec.kustomer_type.replace("_", " ")

    @_partitioned_check(
        asset=asset_key,
        name=COMPLETE_VS_API,
        blocking=False,
        description=(
            f"Every {kind} Kustomer holds for the run's days was stored. Counts alone cannot "
            "tell a lost record from one that an agent changed while the run paged, so the run "
            "compares ids: after each window it lists the ids Kustomer holds now (or, when the "
            "count did not move during the run, proves it with that count), re-reads any it "
            "lacked, and fails if one still cannot be read. This check reports that proof, how "
            f"many {kind}s changed while the run paged, and whether the table still holds the "
            "rows the run wrote. A failure means re-materialize the days."
        ),
    )
    def _complete(context: dg.AssetCheckExecutionContext, lake: DeltaLakeResource):
        keys = _partition_keys(context)
        instance = context.instance
        latest = latest_materializations(instance, asset_key, keys)
        store = lake.store()
        now = datetime.now(UTC)
        verdicts: dict[str, Verdict] = {}
        by_run: dict[str, list[str]] = {}
        for key in keys:
            if key in latest:
                by_run.setdefault(latest[key].run_id, []).append(key)
            else:
                verdicts[key] = Verdict(
                    False, f"{key} has never been materialized: nothing to compare."
                )
        for run_id, run_keys in by_run.items():
            record = latest[run_keys[0]]
            group = _judge_window(spec, store, instance, asset_key, record, run_keys[0], now)
            for key in run_keys:
                day_rows = group.metadata.get("rows_per_day_table", {})
                verdicts[key] = Verdict(
                    passed=group.passed,
                    description=group.description,
                    severity=group.severity,
                    materialization=latest[key],
                    metadata={
                        **{k: v for k, v in group.metadata.items() if k != "rows_per_day_table"},
                        "run_id": run_id,
                        "partition_rows_in_table": day_rows.get(key, 0),
                    },
                )
        yield from _emit(context, asset_key, COMPLETE_VS_API, {k: verdicts[k] for k in keys})

    return _complete


def _judge_window(
    spec: EntitySpec,
    store: DeltaStore,
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    record: dg.EventLogRecord,
    partition: str,
    now: datetime,
) -> Verdict:
    """Compare one materialization's window with its reported total and with the table."""
    metadata = _metadata_values(record)
    if metadata.get("skipped"):
        return Verdict(True, f"The run skipped {spec.name}: {metadata.get('reason', '')}".strip())
    start, end = _window_bounds(metadata, partition)
    window = {"window_start": start.isoformat(), "window_end": end.isoformat()}
    severity = WARN if end > now else ERROR
    reported = run_value(metadata, "api_reported_total")
    # Runs since per-partition metadata record the run's rows as run/rows_written.
    written = run_value(metadata, "rows_written", metadata.get("dagster/row_count"))
    if reported is None:
        return Verdict(True, "Kustomer reported no total for this window.", window)
    days = _days(start.date(), end.date())
    day_keys = [d.isoformat() for d in days]
    # A day rewritten by a later run no longer holds this run's rows: compare it no more.
    latest = latest_materializations(instance, asset_key, day_keys)
    rewritten = [k for k in day_keys if k in latest and latest[k].run_id != record.run_id]
    table = (
        _rows_per_day(store.scan(spec.name), start.date(), end.date())
        if store.exists(spec.name)
        else {}
    )
    in_table = sum(table.get(k, 0) for k in day_keys)
    # Only an entity with a `Reference` gets rows after its run: referenced records merged into
    # their own (earlier) day by a later window. Extra rows there are expected, fewer are not.
    surplus_ok = spec.reference is not None

    def differs(stored: int, expected: int) -> bool:
        return stored < expected or (stored > expected and not surplus_ok)

    problems: list[str] = []
    verified_by = run_value(metadata, "verified_by")
    changed = int(run_value(metadata, "changed_during_run") or 0)
    if verified_by in (None, "-", ""):
        # Written before runs proved windows by ids: only the counts can be compared.
        if written != reported:
            problems.append(f"the run wrote {written} rows but Kustomer reported {reported}")
        if not rewritten and differs(in_table, reported):
            problems.append(f"the table holds {in_table} rows for the window, not {reported}")
    elif int(run_value(metadata, "ids_unaccounted") or 0):
        problems.append(
            f"{run_value(metadata, 'ids_unaccounted')} records Kustomer lists for the window were "
            "not read"
        )
    written_per_day = run_value(metadata, "rows_per_day") or {}
    differing = [
        k
        for k in day_keys
        if k not in rewritten and differs(table.get(k, 0), int(written_per_day.get(k, 0)))
    ]
    if differing and verified_by not in (None, "-", ""):
        problems.extend(
            f"the table holds {table.get(k, 0)} rows for {k}, not the "
            f"{int(written_per_day.get(k, 0))} the run wrote"
            for k in differing
        )
    label = f"{start.date()}..{end.date() - timedelta(days=1)}"
    if problems:
        description = f"Window {label}: " + "; ".join(problems) + "."
    elif verified_by in (None, "-", ""):
        description = f"Window {label}: {reported} {spec.name} reported, written and stored."
    else:
        proof = (
            "every id Kustomer lists for it now was read"
            if "ids" in str(verified_by)
            else "Kustomer's count did not move while the run read it"
        )
        description = (
            f"Window {label}: {written} {spec.name} rows written and stored; {proof} "
            f"({changed} changed while the run paged; Kustomer counted {reported} at the start "
            f"and {run_value(metadata, 'api_count_after')} at the end)."
        )
    return Verdict(
        passed=not problems,
        severity=severity,
        description=description,
        metadata={
            **window,
            "api_reported_total": reported,
            "api_count_after": run_value(metadata, "api_count_after"),
            "changed_during_run": changed,
            "verified_by": verified_by or "-",
            "rows_written": written,
            "rows_in_table_for_window": in_table,
            "days_rewritten_since": rewritten,
            "rows_per_day_table": table,
        },
    )


# ----------------------------------------------------------------------------- references


@dataclass(frozen=True)
class ReferenceRule:
    """`table.column` must name a row of `target` (by `id`)."""

    table: str
    column: str
    target: str

    @property
    def check_name(self) -> str:
        return f"known_{ENTITIES_BY_NAME[self.target].kustomer_type}"


def reference_rules(entities: Iterable[EntitySpec] = ENTITIES) -> list[ReferenceRule]:
    """The references the loads guarantee, read from the spec table.

    - Tables with a `conversation_id` point at conversations: adding a message, note or CSAT
      answer updates its conversation, so the conversation has a version on or after that day.
    - A spec's `Reference` (customers <- conversations.customer_id) is fetched by id for every
      window, so the referring rows must find their target.
    Other id columns (agents, brands, customers of messages) are not guaranteed by the load and
    are left out, so the checks report only what is a real gap.
    """
    specs = list(entities)
    names = {spec.name for spec in specs}
    rules: list[ReferenceRule] = []
    if CONVERSATIONS.name in names:
        rules += [
            ReferenceRule(spec.name, "conversation_id", CONVERSATIONS.name)
            for spec in specs
            if spec.name != CONVERSATIONS.name
            and any(c.name == "conversation_id" for c in spec.columns)
        ]
    rules += [
        ReferenceRule(spec.reference.table, spec.reference.column, spec.name)
        for spec in specs
        if spec.reference is not None and spec.reference.table in names
    ]
    return rules


def reference_check(rule: ReferenceRule) -> dg.AssetChecksDefinition:
    """Rows of `rule.table` whose `rule.column` names no row of `rule.target` (orphans)."""
    asset_key = dg.AssetKey(rule.table)
    target_kind = ENTITIES_BY_NAME[rule.target].kustomer_type
    kind = ENTITIES_BY_NAME[rule.table].kustomer_type.replace("_", " ")

    @dg.asset_check(
        asset=asset_key,
        name=rule.check_name,
        # After the target in a run that loads both, so a fresh target is not read half-written.
        additional_deps=[dg.AssetKey(rule.target)],
        blocking=False,
        description=(
            f"Every {kind} points at a {target_kind} present in `{rule.target}` "
            f"(`{rule.column}`). Only {kind}s created within the days `{rule.target}` has "
            f"loaded count: an older {kind} may belong to a {target_kind} last changed before "
            "the first loaded day, which is expected. Orphans make joins drop rows; warns with "
            "their count and sample ids."
        ),
    )
    def _known(context: dg.AssetCheckExecutionContext, lake: DeltaLakeResource):
        store = lake.store()
        if not store.exists(rule.table) or not store.exists(rule.target):
            missing = rule.table if not store.exists(rule.table) else rule.target
            return dg.AssetCheckResult(
                passed=True,
                severity=WARN,
                description=f"No {missing} table yet: nothing to compare.",
            )
        target = store.scan(rule.target)
        bounds = target.select(
            pl.col(PARTITION_COLUMN).min().alias("first"),
            pl.col(PARTITION_COLUMN).max().alias("last"),
        ).collect()
        first, last = bounds["first"][0], bounds["last"][0]
        if first is None:
            return dg.AssetCheckResult(
                passed=True, severity=WARN, description=f"{rule.target} is empty."
            )
        start, end = day_start(first), day_start(last + timedelta(days=1))
        referring = (
            store.scan(rule.table)
            .filter(pl.col(rule.column).is_not_null())
            .filter(pl.col("created_at").is_between(start, end, closed="left"))
            .select("id", pl.col(rule.column).alias("ref"))
            .unique()
        )
        orphans = (
            referring.join(target.select(pl.col("id").alias("ref")).unique(), on="ref", how="anti")
            .sort("id")
            .collect()
        )
        checked = referring.select(pl.len()).collect().item()
        orphan_ids = orphans["id"].unique(maintain_order=True)
        missing_refs = orphans["ref"].unique().sort()
        return dg.AssetCheckResult(
            passed=orphans.is_empty(),
            severity=WARN,
            description=(
                f"{orphan_ids.len()} {kind}s point at {missing_refs.len()} {target_kind}s "
                f"missing from {rule.target}."
                if not orphans.is_empty()
                else f"All {checked} {kind}s created {first}..{last} find their {target_kind}."
            ),
            metadata={
                "orphans": orphan_ids.len(),
                "missing_targets": missing_refs.len(),
                "sample_ids": orphan_ids.head(SAMPLE_SIZE).to_list(),
                "sample_missing_target_ids": missing_refs.head(SAMPLE_SIZE).to_list(),
                "references_checked": checked,
                "target_loaded_from": first.isoformat(),
                "target_loaded_to": last.isoformat(),
            },
        )

    return _known


# ----------------------------------------------------------------------------- feedback


ONE_ROW_PER_LIVE_CONVERSATION = "one_row_per_live_conversation"


def feedback_check() -> dg.AssetChecksDefinition:
    """`feedback` holds exactly one row per live conversation of the conversations table."""

    @dg.asset_check(
        asset=FEEDBACK_KEY,
        name=ONE_ROW_PER_LIVE_CONVERSATION,
        additional_deps=[dg.AssetKey(CONVERSATIONS.name)],
        blocking=False,
        description=(
            "Exactly one feedback row per live conversation: every conversation whose latest "
            "version is not deleted, and that Kustomer still returns, appears once, and "
            "nothing else appears (no duplicates, no deleted, removed or unknown "
            "conversations). Duplicates inflate counts; missing rows hide conversations from "
            "the analysis."
        ),
    )
    def _one_row(context: dg.AssetCheckExecutionContext, lake: DeltaLakeResource):
        store = lake.store()
        if not store.exists(FEEDBACK_TABLE):
            return dg.AssetCheckResult(
                passed=False, description=f"No feedback table at {store.uri(FEEDBACK_TABLE)}."
            )
        if store.exists(CONVERSATIONS.name):
            live = (
                store.scan(CONVERSATIONS.name)
                .group_by("id")
                .agg(pl.col("deleted").sort_by("updated_at").last())
                .filter(~pl.col("deleted").fill_null(False))
                .select(pl.col("id").alias("conversation_id"))
            )
            if store.exists(REMOVED_RECORDS):  # Kustomer no longer returns them
                removed = store.scan(REMOVED_RECORDS).filter(pl.col("entity") == CONVERSATIONS.name)
                live = live.join(
                    removed.select(pl.col("id").alias("conversation_id")),
                    on="conversation_id",
                    how="anti",
                )
        else:
            live = pl.LazyFrame(schema={"conversation_id": pl.Utf8})
        rows = store.scan(FEEDBACK_TABLE).group_by("conversation_id").agg(pl.len().alias("rows"))
        duplicated = rows.filter(pl.col("rows") > 1).sort("conversation_id").collect()
        missing = live.join(rows, on="conversation_id", how="anti").sort("conversation_id")
        extra = rows.join(live, on="conversation_id", how="anti").sort("conversation_id")
        missing_df, extra_df = missing.collect(), extra.collect()
        live_count = live.select(pl.len()).collect().item()
        problems = [
            f"{duplicated.height} conversations appear more than once" if duplicated.height else "",
            f"{missing_df.height} live conversations are missing" if missing_df.height else "",
            f"{extra_df.height} rows are not live conversations" if extra_df.height else "",
        ]
        problems = [p for p in problems if p]
        return dg.AssetCheckResult(
            passed=not problems,
            description=(
                "; ".join(problems) + "."
                if problems
                else f"{live_count} live conversations, one feedback row each."
            ),
            metadata={
                "live_conversations": live_count,
                "duplicated_conversations": duplicated.height,
                "surplus_rows": int((duplicated["rows"] - 1).sum()) if duplicated.height else 0,
                "missing_conversations": missing_df.height,
                "rows_not_live": extra_df.height,
                "sample_duplicated_ids": duplicated["conversation_id"].head(SAMPLE_SIZE).to_list(),
                "sample_missing_ids": missing_df["conversation_id"].head(SAMPLE_SIZE).to_list(),
                "sample_not_live_ids": extra_df["conversation_id"].head(SAMPLE_SIZE).to_list(),
            },
        )

    return _one_row


FEEDBACK_INPUTS_LOADED = "inputs_loaded"


def feedback_inputs_check(inputs: Iterable[str]) -> dg.AssetChecksDefinition:
    """Every raw table `feedback` joins has been loaded (or was skipped on purpose)."""
    names = [name for name in inputs if name in ENTITIES_BY_NAME]

    @dg.asset_check(
        asset=FEEDBACK_KEY,
        name=FEEDBACK_INPUTS_LOADED,
        blocking=False,
        description=(
            "Every raw table feedback joins (conversations, messages, customers, agents, teams, "
            "tags, notes, CSAT, brands) has been materialized at least once, or was skipped on "
            "purpose (a missing optional role, a toggle). Built before its inputs exist, "
            "feedback has rows with no transcript, no agent and no customer: this check names "
            "the input to load first."
        ),
    )
    def _inputs_loaded(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        never, skipped = [], {}
        for name in names:
            event = context.instance.get_latest_materialization_event(dg.AssetKey(name))
            materialization = event.asset_materialization if event else None
            if materialization is None:
                never.append(name)
            elif (value := materialization.metadata.get("skipped")) and value.value:
                reason = materialization.metadata.get("reason")
                skipped[name] = str(reason.value) if reason else "skipped"
        return dg.AssetCheckResult(
            passed=not never,
            description=(
                f"feedback was built before {', '.join(never)} had ever been loaded: materialize "
                f"{'it' if len(never) == 1 else 'them'} (the same days as conversations), then "
                "feedback again."
                if never
                else f"All {len(names)} inputs loaded"
                + (f"; skipped on purpose: {', '.join(sorted(skipped))}." if skipped else ".")
            ),
            metadata={"never_loaded": never, "skipped": skipped},
        )

    return _inputs_loaded


# ----------------------------------------------------------------------------- all of them


def quality_checks(
    assets: Iterable[dg.AssetsDefinition | dg.AssetSpec],
    freshness: FreshnessWindows | None = None,
) -> list[dg.AssetChecksDefinition]:
    """Every check for the Kustomer assets present in `assets`, partition_fresh included.

    Checks are built only for assets that are there (an entity table, `feedback`), so the list
    always fits the Definitions it is passed with.
    """
    keys: set[dg.AssetKey] = set()
    for asset in assets:
        keys.update(asset.keys if isinstance(asset, dg.AssetsDefinition) else [asset.key])
    present = [spec for spec in ENTITIES if dg.AssetKey(spec.name) in keys]
    checks: list[dg.AssetChecksDefinition] = []
    for spec in present:
        checks.append(unique_versions_check(spec))
        if isinstance(spec.source, SearchSource):
            checks.append(complete_vs_api_check(spec))
    checks += [reference_check(rule) for rule in reference_rules(present)]
    if FEEDBACK_KEY in keys and dg.AssetKey(CONVERSATIONS.name) in keys:
        checks.append(feedback_check())
        checks.append(feedback_inputs_check(FEEDBACK_INPUT_TABLES))
    checks += [partition_fresh_check(dg.AssetKey(spec.name), freshness) for spec in present]
    return checks
