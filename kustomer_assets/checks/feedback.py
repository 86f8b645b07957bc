"""Checks on `feedback`: one row per live conversation, and every input it joins loaded.

Feedback is built on the rows of one entity (`CONVERSATIONS` of the spec table): the checks take
that spec, and the list of entities, as parameters, so they follow the spec table rather than
naming tables themselves.
"""

from collections.abc import Iterable

import dagster as dg
import polars as pl

from kustomer_assets.checks.events import SAMPLE_SIZE
from kustomer_assets.entities import CONVERSATIONS, ENTITIES, EntitySpec
from kustomer_assets.feedback.build import FEEDBACK
from kustomer_assets.org import DEFAULT_ORG, Org
from kustomer_assets.removals import REMOVED_RECORDS
from kustomer_assets.run_report import SkippedRun

ONE_ROW_PER_LIVE_CONVERSATION = "one_row_per_live_conversation"
FEEDBACK_INPUTS_LOADED = "inputs_loaded"
KEY_COLUMN = "conversation_id"
"""Feedback's row key: the id of the record it describes."""


def feedback_check(
    base: EntitySpec = CONVERSATIONS, org: Org = DEFAULT_ORG
) -> dg.AssetChecksDefinition:
    """`feedback` holds exactly one row per live record of `base` (its conversations)."""

    @dg.asset_check(
        asset=org.asset_key(FEEDBACK),
        name=ONE_ROW_PER_LIVE_CONVERSATION,
        additional_deps=[org.asset_key(base.name)],
        blocking=False,
        required_resource_keys={org.lake_key},
        description=(
            f"Exactly one feedback row per live {base.kustomer_type}: every {base.kustomer_type} "
            "whose latest version is not deleted, and that Kustomer still returns, appears "
            "once, and nothing else appears (no duplicates, no deleted, removed or unknown "
            f"{base.name}). Duplicates inflate counts; missing rows hide {base.name} from the "
            "analysis."
        ),
    )
    def _one_row(context: dg.AssetCheckExecutionContext):
        store = org.lake(context).store()
        if not store.exists(FEEDBACK):
            return dg.AssetCheckResult(
                passed=False, description=f"No feedback table at {store.uri(FEEDBACK)}."
            )
        if store.exists(base.name):
            live = (
                store.scan(base.name)
                .group_by("id")
                .agg(pl.col("deleted").sort_by("updated_at").last())
                .filter(~pl.col("deleted").fill_null(False))
                .select(pl.col("id").alias(KEY_COLUMN))
            )
            if store.exists(REMOVED_RECORDS):  # Kustomer no longer returns them
                removed = store.scan(REMOVED_RECORDS).filter(pl.col("entity") == base.name)
                live = live.join(
                    removed.select(pl.col("id").alias(KEY_COLUMN)), on=KEY_COLUMN, how="anti"
                )
        else:
            live = pl.LazyFrame(schema={KEY_COLUMN: pl.Utf8})
        rows = store.scan(FEEDBACK).group_by(KEY_COLUMN).agg(pl.len().alias("rows"))
        duplicated = rows.filter(pl.col("rows") > 1).sort(KEY_COLUMN).collect()
        missing = live.join(rows, on=KEY_COLUMN, how="anti").sort(KEY_COLUMN).collect()
        extra = rows.join(live, on=KEY_COLUMN, how="anti").sort(KEY_COLUMN).collect()
        live_count = live.select(pl.len()).collect().item()
        what = base.name
        problems = [
            f"{duplicated.height} {what} appear more than once" if duplicated.height else "",
            f"{missing.height} live {what} are missing" if missing.height else "",
            f"{extra.height} rows are not live {what}" if extra.height else "",
        ]
        problems = [p for p in problems if p]
        return dg.AssetCheckResult(
            passed=not problems,
            description=(
                "; ".join(problems) + "."
                if problems
                else f"{live_count} live {what}, one feedback row each."
            ),
            metadata={
                f"live_{what}": live_count,
                f"duplicated_{what}": duplicated.height,
                "surplus_rows": int((duplicated["rows"] - 1).sum()) if duplicated.height else 0,
                f"missing_{what}": missing.height,
                "rows_not_live": extra.height,
                "sample_duplicated_ids": duplicated[KEY_COLUMN].head(SAMPLE_SIZE).to_list(),
                "sample_missing_ids": missing[KEY_COLUMN].head(SAMPLE_SIZE).to_list(),
                "sample_not_live_ids": extra[KEY_COLUMN].head(SAMPLE_SIZE).to_list(),
            },
        )

    return _one_row


def feedback_inputs_check(
    inputs: Iterable[str],
    entities: Iterable[EntitySpec] = ENTITIES,
    base: EntitySpec = CONVERSATIONS,
    org: Org = DEFAULT_ORG,
) -> dg.AssetChecksDefinition:
    """Every raw table `feedback` joins has been loaded (or was skipped on purpose); `inputs`
    may name other tables too (`removed_records`): only those of `entities` are judged."""
    known = {spec.name for spec in entities}
    names = [name for name in inputs if name in known]

    @dg.asset_check(
        asset=org.asset_key(FEEDBACK),
        name=FEEDBACK_INPUTS_LOADED,
        blocking=False,
        description=(
            f"Every raw table feedback joins ({', '.join(names)}) has been materialized at "
            "least once, or was skipped on purpose (a missing optional role, a toggle). Built "
            "before its inputs exist, feedback has rows with no transcript, no agent and no "
            "customer: this check names the input to load first."
        ),
    )
    def _inputs_loaded(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        never: list[str] = []
        skipped: dict[str, str] = {}
        for name in names:
            event = context.instance.get_latest_materialization_event(org.asset_key(name))
            materialization = event.asset_materialization if event else None
            if materialization is None:
                never.append(name)
            elif (skip := SkippedRun.from_metadata(materialization.metadata)) is not None:
                skipped[name] = skip.reason or "skipped"
        return dg.AssetCheckResult(
            passed=not never,
            description=(
                f"feedback was built before {', '.join(never)} had ever been loaded: materialize "
                f"{'it' if len(never) == 1 else 'them'} (the same days as {base.name}), then "
                "feedback again."
                if never
                else f"All {len(names)} inputs loaded"
                + (f"; skipped on purpose: {', '.join(sorted(skipped))}." if skipped else ".")
            ),
            metadata={"never_loaded": never, "skipped": skipped},
        )

    return _inputs_loaded
