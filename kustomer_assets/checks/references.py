"""`known_<type>`: rows that point at a record of another table find it there.

Only references the loads keep whole are checked, so a failure is a real gap: the spec's
guaranteed joins (adding a message updates its conversation, so the conversation has a version
on or after that day) and each spec's `Reference` (records the referring table points at are
fetched by id for every window). Other id columns (agents, brands, a message's customer) are
not guaranteed by the load and are left out.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg
import polars as pl

from kustomer_assets.checks.events import SAMPLE_SIZE, WARN, kind_of
from kustomer_assets.checks.freshness import day_start
from kustomer_assets.entities import ENTITIES, EntitySpec
from kustomer_assets.org import DEFAULT_ORG, Org
from kustomer_assets.records import PARTITION_COLUMN


@dataclass(frozen=True)
class ReferenceRule:
    """`table.column` must name a row of `target` (by `id`); `many` for a list of ids."""

    table: str
    column: str
    target: str
    table_type: str
    """Kustomer type of the referring table's records (descriptions name them)."""
    target_type: str
    """Kustomer type of the target's records (the check is `known_<target_type>`)."""
    many: bool = False

    @property
    def check_name(self) -> str:
        return f"known_{self.target_type}"


def reference_rules(entities: Iterable[EntitySpec] = ENTITIES) -> list[ReferenceRule]:
    """The references the loads guarantee among `entities`, in spec order: guaranteed joins
    first, then `Reference`s (referring table and column -> the spec that declares it)."""
    specs = list(entities)
    by_name = {spec.name: spec for spec in specs}
    rules: list[ReferenceRule] = [
        ReferenceRule(
            spec.name,
            join.column,
            join.target,
            spec.kustomer_type,
            by_name[join.target].kustomer_type,
            join.many,
        )
        for spec in specs
        for join in spec.joins
        if join.guaranteed and join.target in by_name and join.target != spec.name
    ]
    rules += [
        ReferenceRule(
            spec.reference.table,
            spec.reference.column,
            spec.name,
            by_name[spec.reference.table].kustomer_type,
            spec.kustomer_type,
        )
        for spec in specs
        if spec.reference is not None and spec.reference.table in by_name
    ]
    unique = list(dict.fromkeys(rules))  # a join both guaranteed and a Reference: one check
    names = [(rule.table, rule.check_name) for rule in unique]
    clashes = sorted({f"{t}.{n}" for t, n in names if names.count((t, n)) > 1})
    if clashes:
        raise ValueError(f"two reference checks would share a name: {', '.join(clashes)}")
    return unique


def reference_check(rule: ReferenceRule, org: Org = DEFAULT_ORG) -> dg.AssetChecksDefinition:
    """Rows of `rule.table` whose `rule.column` names no row of `rule.target` (orphans)."""
    asset_key = org.asset_key(rule.table)
    target_kind = kind_of(rule.target_type)
    kind = kind_of(rule.table_type)

    @dg.asset_check(
        asset=asset_key,
        name=rule.check_name,
        # After the target in a run that loads both, so a fresh target is not read half-written.
        additional_deps=[org.asset_key(rule.target)],
        blocking=False,
        required_resource_keys={org.lake_key},
        description=(
            f"Every {kind} points at a {target_kind} present in `{rule.target}` "
            f"(`{rule.column}`). Only {kind}s created within the days `{rule.target}` has "
            f"loaded count: an older {kind} may belong to a {target_kind} last changed before "
            "the first loaded day, which is expected. Orphans make joins drop rows; warns with "
            "their count and sample ids."
        ),
    )
    def _known(context: dg.AssetCheckExecutionContext):
        store = org.lake(context).store()
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
            .filter(pl.col("created_at").is_between(start, end, closed="left"))
            .select("id", pl.col(rule.column).alias("ref"))
        )
        if rule.many:
            referring = referring.explode("ref")
        referring = referring.filter(pl.col("ref").is_not_null()).unique()
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
