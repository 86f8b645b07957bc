"""Every data-quality check for the assets of a code location, generated from the spec table.

Every raw table gets `unique_id_updated_at` (`uniqueness`) and `partition_fresh` (`freshness`);
every searched table gets `complete_vs_api` (`completeness`); tables whose references the load
guarantees get `known_<type>` (`references`); `feedback` gets `one_row_per_live_conversation`
and `inputs_loaded` (`feedback`). Adding an entity to the spec table adds its checks. All read
the Delta tables through the `lake` resource with lazy polars scans, and read what a run
reported (its `RunReport`) from the instance's materializations.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from kustomer_assets.checks.completeness import COMPLETE_VS_API, complete_vs_api_check
from kustomer_assets.checks.feedback import (
    FEEDBACK_INPUTS_LOADED,
    ONE_ROW_PER_LIVE_CONVERSATION,
    feedback_check,
    feedback_inputs_check,
)
from kustomer_assets.checks.freshness import FreshnessWindows, partition_fresh_check
from kustomer_assets.checks.references import ReferenceRule, reference_check, reference_rules
from kustomer_assets.checks.uniqueness import UNIQUE_VERSIONS, unique_versions_check
from kustomer_assets.entities import CONVERSATIONS, ENTITIES, EntitySpec
from kustomer_assets.feedback.build import FEEDBACK
from kustomer_assets.feedback.incremental import INPUTS as FEEDBACK_INPUT_TABLES
from kustomer_assets.org import DEFAULT_ORG, Org


def _asset_keys(assets: Iterable[dg.AssetsDefinition | dg.AssetSpec]) -> set[dg.AssetKey]:
    keys: set[dg.AssetKey] = set()
    for asset in assets:
        keys.update(asset.keys if isinstance(asset, dg.AssetsDefinition) else [asset.key])
    return keys


def quality_checks(
    assets: Iterable[dg.AssetsDefinition | dg.AssetSpec],
    freshness: FreshnessWindows | None = None,
    entities: Iterable[EntitySpec] = ENTITIES,
    feedback_base: EntitySpec = CONVERSATIONS,
    org: Org = DEFAULT_ORG,
) -> list[dg.AssetChecksDefinition]:
    """Every check for the entities of `entities` whose asset is in `assets`, `partition_fresh`
    included, plus feedback's when `feedback` and `feedback_base` (the entity it is built on)
    are there too.

    Checks are built only for assets that are there, so the list always fits the Definitions
    it is passed with.
    """
    keys = _asset_keys(assets)
    entities = tuple(entities)
    present = [spec for spec in entities if org.asset_key(spec.name) in keys]
    checks: list[dg.AssetChecksDefinition] = []
    for spec in present:
        checks.append(unique_versions_check(spec, org))
        if spec.is_searched:
            checks.append(complete_vs_api_check(spec, org))
    checks += [reference_check(rule, org) for rule in reference_rules(present)]
    if org.asset_key(FEEDBACK) in keys and org.asset_key(feedback_base.name) in keys:
        checks.append(feedback_check(feedback_base, org))
        checks.append(feedback_inputs_check(FEEDBACK_INPUT_TABLES, entities, feedback_base, org))
    checks += [partition_fresh_check(org.asset_key(spec.name), freshness) for spec in present]
    return checks


__all__ = [
    "COMPLETE_VS_API",
    "FEEDBACK_INPUTS_LOADED",
    "ONE_ROW_PER_LIVE_CONVERSATION",
    "UNIQUE_VERSIONS",
    "ReferenceRule",
    "complete_vs_api_check",
    "feedback_check",
    "feedback_inputs_check",
    "quality_checks",
    "reference_check",
    "reference_rules",
    "unique_versions_check",
]
