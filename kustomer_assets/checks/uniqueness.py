"""`unique_id_updated_at`: one row per record version, per partition, on every raw table.

Every table's row key is `id` + `updated_at`; a duplicate counts one record twice in every
total and average downstream, and is fixed by re-materializing its day, so the check judges
each day on its own.
"""

from datetime import date

import dagster as dg
import polars as pl

from kustomer_assets.checks.events import (
    SAMPLE_SIZE,
    Verdict,
    emit,
    kind_of,
    partition_keys,
    partitioned_check,
)
from kustomer_assets.checks.freshness import latest_materializations
from kustomer_assets.entities import EntitySpec
from kustomer_assets.org import DEFAULT_ORG, Org
from kustomer_assets.records import PARTITION_COLUMN

UNIQUE_VERSIONS = "unique_id_updated_at"

_NO_ROWS = {"rows": 0, "extra_rows": 0, "duplicated_versions": 0, "sample": []}


def unique_versions_check(spec: EntitySpec, org: Org = DEFAULT_ORG) -> dg.AssetChecksDefinition:
    """No two rows of one partition share `id` and `updated_at` (one row per record version)."""
    asset_key = org.asset_key(spec.name)
    kind = kind_of(spec.kustomer_type)

    @partitioned_check(
        asset=asset_key,
        name=UNIQUE_VERSIONS,
        blocking=False,
        required_resource_keys={org.lake_key},
        description=(
            f"Each version of a {kind} appears once per day: no two rows share `id` and "
            f"`updated_at`. A duplicate would count the same {kind} twice in every total and "
            "average; re-materialize the day to rewrite it."
        ),
    )
    def _unique(context: dg.AssetCheckExecutionContext):
        keys = partition_keys(context)
        store = org.lake(context).store()
        if not store.exists(spec.name):
            note = f"No {spec.name} table yet (entity switched off, not permitted, or not loaded)."
            verdicts = {key: Verdict(True, note, {"rows_checked": 0}) for key in keys}
            yield from emit(context, asset_key, UNIQUE_VERSIONS, verdicts)
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
            row = found.get(key) or _NO_ROWS
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
        yield from emit(context, asset_key, UNIQUE_VERSIONS, verdicts)

    return _unique
