"""The `feedback` asset: one analysis-ready row per live conversation, kept current by merge."""

import time
from collections.abc import Collection

import dagster as dg

from kustomer_assets.assets.raw import OWNERS
from kustomer_assets.entities import CONVERSATIONS, ENTITIES_BY_NAME
from kustomer_assets.feedback.build import (
    FEEDBACK,
    column_descriptions,
    written_schema,
)
from kustomer_assets.feedback.incremental import INPUTS
from kustomer_assets.feedback.refresh import FeedbackConflict, refresh
from kustomer_assets.org import DEFAULT_ORG, FEEDBACK_GROUP, Org

_when = dg.AutomationCondition


def feedback_automation(org: Org = DEFAULT_ORG) -> dg.AutomationCondition:
    """`eager()` without its `~any_deps_missing()`: for an unpartitioned asset over daily
    inputs that term means *every* day since the partitions' start date is loaded, which a
    connector that backfilled some months never satisfies, so plain `eager()` never fires.
    Feedback waits only for `conversations` to hold something; missing optional inputs give
    null columns."""
    base = dg.AssetSelection.assets(org.asset_key(CONVERSATIONS.name))
    return (
        _when.eager().without(~_when.any_deps_missing())
        & _when.any_deps_match(~_when.missing()).allow(base)
    ).with_label("eager (after any input changes, once conversations exist)")


class FeedbackConfig(dg.Config):
    full_rebuild: bool = False
    """Rebuild every conversation instead of only those whose inputs changed."""


def build_feedback_asset(
    org: Org = DEFAULT_ORG, tables: Collection[str] | None = None
) -> dg.AssetsDefinition:
    """`feedback` over the org's tables (its Delta root, its keys); `tables`: the inputs the
    org builds (None: all), so an input left out shows no phantom upstream asset."""
    inputs = [name for name in INPUTS if tables is None or name in tables]

    @dg.asset(
        key=org.asset_key(FEEDBACK),
        group_name=org.group_name(FEEDBACK_GROUP),
        kinds={"delta", "polars"},
        owners=OWNERS,
        deps=org.asset_keys(inputs),
        automation_condition=feedback_automation(org),
        required_resource_keys={org.lake_key},
        description=(
            "One row per live Kustomer conversation, everything an analyst needs in one place: "
            "status and timings, the customer (name, email, locale ...), the assigned agent and "
            "teams, brand and tag names, the ordered transcript, internal notes, CSAT score, "
            "rating and comment, and every conversation and customer custom attribute as a typed "
            "column. Soft-deleted conversations, and those Kustomer no longer returns "
            "(`removed_records`), are excluded; a merged customer's conversations show the "
            "customer it was merged into. Refreshed after each sync by rebuilding only the "
            "conversations whose inputs changed."
        ),
        metadata={"dagster/column_schema": column_descriptions()},
    )
    def feedback(context: dg.AssetExecutionContext, config: FeedbackConfig):
        started = time.monotonic()
        lake = org.lake(context)
        try:
            # Pinned: every input opened once and read, by find and build alike, at the
            # versions the commit note records; built again if another write commits first.
            store, done = refresh(lake.store, full_rebuild=config.full_rebuild, log=context.log)
        except FeedbackConflict as conflict:
            raise dg.Failure(description=str(conflict)) from None
        absent = [t for t in INPUTS if t in ENTITIES_BY_NAME and not store.exists(t)]
        if absent:
            context.log.warning(
                "feedback: %s not loaded yet; their columns stay empty until they are",
                ", ".join(absent),
            )
        changes, full, rebuilt, removed = done.changes, done.full, done.rebuilt, done.removed
        total = (
            store.scan(FEEDBACK).select("conversation_id").collect().height
            if store.exists(FEEDBACK)
            else 0
        )
        metadata: dict[str, object] = {}
        if store.exists(FEEDBACK):
            metadata["dagster/column_schema"] = written_schema(
                store.scan(FEEDBACK).collect_schema()
            )
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "inputs_absent": absent,
                "dagster/row_count": total,
                "mode": "full" if full else "incremental",
                "conversations_rebuilt": rebuilt,
                "rows_removed": removed,
                "input_versions": dg.MetadataValue.json(changes.input_versions),
                "seconds": round(time.monotonic() - started, 2),
                "dagster/uri": store.uri(FEEDBACK),
            }
        )

    return feedback


feedback = build_feedback_asset()
