"""What every check module shares: a verdict per partition, and turning verdicts into events.

Per-partition results: `unique_id_updated_at` and `complete_vs_api` are partitioned checks. A
single-run backfill gives the check step a partition *range*, for which Dagster 1.13 records an
`AssetCheckResult` without any partition (not matching the per-day executions it planned), so
over a range these checks emit one `AssetCheckEvaluation` per day themselves; the UI then shows
a result on every day of the range.
"""

from __future__ import annotations

import inspect
import typing
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import dagster as dg
import polars as pl

from kustomer_assets.partitions import daily_partitions
from kustomer_assets.records import PARTITION_COLUMN

ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN
SAMPLE_SIZE = 10
"""Ids shown in a failing check's metadata: enough to look a few up in Kustomer."""


@dataclass(frozen=True)
class Verdict:
    """One check result for one partition, before it becomes a Dagster event."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    severity: dg.AssetCheckSeverity = ERROR
    materialization: dg.EventLogRecord | None = None


def partitioned_check(**kwargs: Any) -> Callable[[Callable[..., Any]], dg.AssetChecksDefinition]:
    """`dg.asset_check` over the daily partitions.

    Partitioned checks are a "preview" in 1.13; pyproject keeps dagster below 1.14 and the lock
    at 1.13.27, so a minor release cannot change them under us, and the warning would print
    once per check per load.
    """

    def decorate(fn: Callable[..., Any]) -> dg.AssetChecksDefinition:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=dg.PreviewWarning)
            return dg.asset_check(partitions_def=daily_partitions, **kwargs)(fn)

    return decorate


def partition_keys(context: dg.AssetCheckExecutionContext) -> list[str]:
    if context.has_partition_key:
        return [context.partition_key]
    return list(context.partition_keys)


def _target_data_type() -> type | None:
    """The type `AssetCheckEvaluation(target_materialization_data=...)` takes.

    Dagster does not export it, but the evaluation's constructor (public) declares it; reading
    that declaration avoids importing Dagster internals. Without the link the UI would clear a
    range's per-day results as soon as any later materialization exists, so a Dagster that
    renamed the parameter degrades to unlinked results rather than failing the checks.
    """
    try:
        parameter = inspect.signature(dg.AssetCheckEvaluation).parameters
        annotation = parameter["target_materialization_data"].annotation
    except (KeyError, TypeError, ValueError):
        return None
    types = [t for t in typing.get_args(annotation) if isinstance(t, type) and t is not type(None)]
    return types[0] if len(types) == 1 else None


_TARGET_DATA = _target_data_type()


def target_of(record: dg.EventLogRecord | None) -> Any:
    """Links a per-day evaluation to the materialization it judged, as Dagster does for the
    results it builds itself."""
    if record is None or _TARGET_DATA is None:
        return None
    return _TARGET_DATA(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )


def emit(
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
        yield dg.AssetCheckEvaluation(
            asset_key=asset_key,
            check_name=check_name,
            passed=verdict.passed,
            severity=verdict.severity,
            description=verdict.description,
            metadata=verdict.metadata,
            blocking=False,
            partition=partition,
            target_materialization_data=target_of(verdict.materialization),
        )
    # The check's op still owes its (empty) output once the evaluations are out.
    yield dg.Output(None, output_name=context.op_def.output_defs[0].name)


def metadata_values(record: dg.EventLogRecord) -> dict[str, Any]:
    """A materialization's metadata as plain Python values."""
    materialization = record.asset_materialization
    if materialization is None:
        return {}
    return {key: value.value for key, value in materialization.metadata.items()}


def days_between(first: date, end: date) -> list[date]:
    """Days in [first, end)."""
    return [first + timedelta(days=i) for i in range((end - first).days)]


def rows_per_day(scan: pl.LazyFrame, first: date, end: date) -> dict[str, int]:
    """Rows the table holds per partition day in [first, end)."""
    counts = (
        scan.filter(pl.col(PARTITION_COLUMN).is_between(first, end, closed="left"))
        .group_by(PARTITION_COLUMN)
        .agg(pl.len().alias("rows"))
        .collect()
    )
    return {day.isoformat(): rows for day, rows in counts.iter_rows()}


def kind_of(kustomer_type: str) -> str:
    """How descriptions name one record of a Kustomer type (`satisfaction_response` ...)."""
    return kustomer_type.replace("_", " ")
