"""`complete_vs_api`: every record Kustomer holds for a run's window was stored, on every
searched table.

Counts alone cannot tell a lost record from one an agent changed while the run paged, so the
run proves each window (by ids, or by a count that did not move) and records the proof in its
`RunReport`. The check reads that report back from the instance's materializations, so a check
re-run later judges the same run the asset recorded, and compares it with what the table holds
now (a day rewritten by a later run is no longer this run's to judge).
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from kustomer_assets.checks.events import (
    ERROR,
    WARN,
    Verdict,
    days_between,
    emit,
    kind_of,
    metadata_values,
    partition_keys,
    partitioned_check,
    rows_per_day,
)
from kustomer_assets.checks.freshness import day_start, latest_materializations
from kustomer_assets.entities import EntitySpec
from kustomer_assets.lake import DeltaStore
from kustomer_assets.org import DEFAULT_ORG, Org
from kustomer_assets.run_report import RunReport, SkippedRun

COMPLETE_VS_API = "complete_vs_api"


def complete_vs_api_check(spec: EntitySpec, org: Org = DEFAULT_ORG) -> dg.AssetChecksDefinition:
    """Every record Kustomer holds for a run's window was read (proven by ids, or by counts that
    did not move), and the table still holds what the run wrote for those days."""
    asset_key = org.asset_key(spec.name)
    kind = kind_of(spec.kustomer_type)

    @partitioned_check(
        asset=asset_key,
        name=COMPLETE_VS_API,
        blocking=False,
        required_resource_keys={org.lake_key},
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
    def _complete(context: dg.AssetCheckExecutionContext):
        keys = partition_keys(context)
        instance = context.instance
        latest = latest_materializations(instance, asset_key, keys)
        store = org.lake(context).store()
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
            group = judge_window(spec, store, instance, asset_key, record, run_keys[0], now)
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
        yield from emit(context, asset_key, COMPLETE_VS_API, {k: verdicts[k] for k in keys})

    return _complete


def window_bounds(report: RunReport, fallback: str) -> tuple[datetime, datetime]:
    """The `[start, end)` a materialization covered; its own partition when not recorded."""
    if report.window_start is not None and report.window_end is not None:
        return report.window_start, report.window_end
    day = date.fromisoformat(fallback)
    return day_start(day), day_start(day + timedelta(days=1))


def judge_window(
    spec: EntitySpec,
    store: DeltaStore,
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    record: dg.EventLogRecord,
    partition: str,
    now: datetime,
) -> Verdict:
    """Compare one materialization's window with its reported total and with the table."""
    metadata = metadata_values(record)
    skipped = SkippedRun.from_metadata(metadata)
    if skipped is not None:
        return Verdict(True, f"The run skipped {spec.name}: {skipped.reason}".strip())
    report = RunReport.from_metadata(metadata)
    start, end = window_bounds(report, partition)
    window = {"window_start": start.isoformat(), "window_end": end.isoformat()}
    severity = WARN if end > now else ERROR
    reported = report.api_reported_total
    written = report.rows_written
    if written is None:  # written before the run's rows were recorded as a run figure
        written = metadata.get("dagster/row_count")
    if reported is None:
        return Verdict(True, "Kustomer reported no total for this window.", window)
    day_keys = [d.isoformat() for d in days_between(start.date(), end.date())]
    # A day rewritten by a later run no longer holds this run's rows: compare it no more.
    latest = latest_materializations(instance, asset_key, day_keys)
    rewritten = [k for k in day_keys if k in latest and latest[k].run_id != record.run_id]
    table = (
        rows_per_day(store.scan(spec.name), start.date(), end.date())
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
    changed = report.changed_during_run or 0
    if not report.verified:
        # Written before runs proved windows by ids: only the counts can be compared.
        if written != reported:
            problems.append(f"the run wrote {written} rows but Kustomer reported {reported}")
        if not rewritten and differs(in_table, reported):
            problems.append(f"the table holds {in_table} rows for the window, not {reported}")
    elif report.ids_unaccounted:
        problems.append(
            f"{report.ids_unaccounted} records Kustomer lists for the window were not read"
        )
    written_per_day = report.rows_per_day or {}
    differing = [
        k
        for k in day_keys
        if k not in rewritten and differs(table.get(k, 0), written_per_day.get(k, 0))
    ]
    if differing and report.verified:
        problems.extend(
            f"the table holds {table.get(k, 0)} rows for {k}, not the "
            f"{written_per_day.get(k, 0)} the run wrote"
            for k in differing
        )
    label = f"{start.date()}..{end.date() - timedelta(days=1)}"
    if problems:
        description = f"Window {label}: " + "; ".join(problems) + "."
    elif not report.verified:
        description = f"Window {label}: {reported} {spec.name} reported, written and stored."
    else:
        proof = (
            "every id Kustomer lists for it now was read"
            if "ids" in str(report.verified_by)
            else "Kustomer's count did not move while the run read it"
        )
        description = (
            f"Window {label}: {written} {spec.name} rows written and stored; {proof} "
            f"({changed} changed while the run paged; Kustomer counted {reported} at the start "
            f"and {report.api_count_after} at the end)."
        )
    return Verdict(
        passed=not problems,
        severity=severity,
        description=description,
        metadata={
            **window,
            "api_reported_total": reported,
            "api_count_after": report.api_count_after,
            "changed_during_run": changed,
            "verified_by": report.verified_by or "-",
            "rows_written": written,
            "rows_in_table_for_window": in_table,
            "days_rewritten_since": rewritten,
            "rows_per_day_table": table,
        },
    )
