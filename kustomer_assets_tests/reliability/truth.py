"""Compare a table written while the org moved with what the emulator held before and after.

Why not `assert_matches_truth` alone: with churn on, the server's current state is not what a
correct run must hold. A record nobody touched must be in the table at exactly the version it
had (and with exactly its values); a record churn touched may be at any version it had during
the run, and never twice. Without churn the two checks coincide, so every scenario of the
suite goes through this one function.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import EntitySpec
from kustomer_assets.records import PARTITION_COLUMN, parse_timestamp

Records = dict[str, dict[str, Any]]
"""id -> JSON:API resource, as the emulator's truth returns it."""


def snapshot(emulator: Emulator, kustomer_type: str) -> Records:
    """The server's records of a type now, by id (deleted ones included, as search sends)."""
    return {record["id"]: record for record in emulator.truth(kustomer_type)}


def updated_at(record: Mapping[str, Any]) -> datetime:
    stamp = parse_timestamp(record["attributes"].get("updatedAt"))
    assert stamp is not None, record["id"]
    return stamp


def bounds(first: str, last: str) -> tuple[datetime, datetime]:
    """`[start, end)` of the partition range `first...last` (both days included)."""
    start = datetime.fromisoformat(first).replace(tzinfo=UTC)
    return start, datetime.fromisoformat(last).replace(tzinfo=UTC) + timedelta(days=1)


def ids_in_window(records: Records, first: str, last: str) -> set[str]:
    start, end = bounds(first, last)
    return {rid for rid, record in records.items() if start <= updated_at(record) < end}


def referenced_ids(table: pl.DataFrame, column: str, first: str, last: str) -> set[str]:
    """Ids the rows of `first...last` point at through `column` (customers of conversations)."""
    rows = table.filter(
        pl.col(PARTITION_COLUMN).is_between(date.fromisoformat(first), date.fromisoformat(last))
    )
    return set(rows[column].drop_nulls().to_list())


def assert_rows_equal(table: pl.DataFrame, spec: EntitySpec, records: Iterable[dict]) -> int:
    """The table's rows for exactly these record versions equal the mapper's rows for them,
    column by column (every column the mapper gives them); returns how many were compared."""
    expected = spec.mapper.frame(list(records)).sort("id", "updated_at")
    if expected.is_empty():
        return 0
    keys = expected.select("id", "updated_at")
    actual = table.join(keys, on=["id", "updated_at"], how="semi").sort("id", "updated_at")
    assert actual.height == expected.height, (
        f"{spec.name}: {expected.height} versions expected, {actual.height} found"
    )
    for column in expected.columns:
        assert column in actual.columns, f"{spec.name}: column {column} missing"
        got, want = actual[column].to_list(), expected[column].to_list()
        if got != want:
            bad = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
            raise AssertionError(
                f"{spec.name}.{column} differs for {expected['id'][bad]}: "
                f"{got[bad]!r} != {want[bad]!r}"
            )
    return expected.height


@dataclass(frozen=True)
class Checked:
    """What `assert_live_table` verified, so a test can insist the scenario was not empty."""

    exact: int
    """Records nobody touched, found at their exact version with their exact values."""
    touched: int
    """Records churn changed, found at versions they had during the run."""


def assert_live_table(
    table: pl.DataFrame,
    spec: EntitySpec,
    before: Records,
    after: Records,
    churned: set[str],
    first: str,
    last: str,
    *,
    also_expected: Iterable[str] = (),
) -> Checked:
    """The guarantees of a run over `first...last` while churn changed the `churned` ids.

    * no (id, updated_at) twice;
    * every record the window held before the run (plus `also_expected`, e.g. customers the
      window's conversations point at) that churn did not touch is there, at its version
      before the run only, with its values;
    * every touched record stored is at versions between the one it had before the run and
      the one it has now, and a row at its current version equals the current record;
    * no other record is there.
    """
    duplicates = table.group_by("id", "updated_at").len().filter(pl.col("len") > 1)
    assert duplicates.is_empty(), f"{spec.name}: duplicate versions {duplicates}"
    versions: dict[str, set[datetime]] = {}
    for rid, stamp in table.select("id", "updated_at").iter_rows():
        versions.setdefault(rid, set()).add(stamp)
    expected = ids_in_window(before, first, last) | set(also_expected)
    exact = expected - churned
    lost = sorted(exact - set(versions))
    assert not lost, f"{spec.name}: {len(lost)} untouched records lost, e.g. {lost[:3]}"
    moved = sorted(i for i in exact if versions[i] != {updated_at(before[i])})
    assert not moved, f"{spec.name}: untouched records at another version, e.g. {moved[:3]}"
    assert_rows_equal(table, spec, (before[i] for i in exact))
    extra = sorted(set(versions) - expected - churned)
    assert not extra, f"{spec.name}: {len(extra)} unexpected records, e.g. {extra[:3]}"
    start, _ = bounds(first, last)
    current = []
    for rid in churned & set(versions):
        low = updated_at(before[rid]) if rid in before else start
        high = updated_at(after[rid])
        outside = [v for v in versions[rid] if not low <= v <= high]
        assert not outside, f"{spec.name}: {rid} at versions it never had: {outside}"
        if high in versions[rid]:
            current.append(after[rid])
    assert_rows_equal(table, spec, current)
    return Checked(exact=len(exact), touched=len(churned & set(versions)))
