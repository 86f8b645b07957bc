"""The `removed_records` asset: records Kustomer no longer returns, found by comparing ids.

Listing, candidates and confirmation live in `kustomer_assets.removals`; this module wires each
searched entity's table to the client and writes the result. Each run rewrites the rows of
every entity it reconciled (a record that reappears is un-marked) in one commit, and makes no
commit when nothing changed, so `feedback`, which reads this table as an input, rebuilds only
the conversations a change reaches.
"""

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl

from kustomer_assets.assets.raw import (
    OWNERS,
    SEARCH_HORIZON,
    one_sentence_failures,
    switched_off_reason,
)
from kustomer_assets.checks.key_check.probes import role_required
from kustomer_assets.entities import ENTITIES, EntitySpec, SearchSource
from kustomer_assets.kustomer import KustomerPermissionError
from kustomer_assets.lake.tables import replace_rows_where
from kustomer_assets.org import DEFAULT_ORG, RAW_GROUP, Org
from kustomer_assets.removals import (
    COLUMN_DESCRIPTIONS,
    DEFAULT_MAX_CANDIDATE_SHARE,
    REMOVED_RECORDS,
    REMOVED_RECORDS_SCHEMA,
    EntityReconciliation,
    ImplausibleRemovalsError,
    empty_rows,
    reconcile_entity,
)


def searched(entities: tuple[EntitySpec, ...]) -> tuple[EntitySpec, ...]:
    """The entities listed by search: only their ids can be listed cheaply."""
    return tuple(spec for spec in entities if isinstance(spec.source, SearchSource))


SEARCHED = searched(ENTITIES)

REMOVALS_FRESHNESS = dg.FreshnessPolicy.time_window(
    warn_window=timedelta(days=8), fail_window=timedelta(days=15)
)
"""Meant to run weekly (README, "Removed records"): late after a missed week, failed after two;
the raw tables' daily windows would call it stale six days out of seven."""


class RemovedRecordsConfig(dg.Config):
    max_candidate_share: float = DEFAULT_MAX_CANDIDATE_SHARE
    """Share of an entity's records that may seem gone in one run before the run refuses to
    mark them; raise it after a real mass deletion."""


def build_removed_records(
    entities: tuple[EntitySpec, ...] = ENTITIES, org: Org = DEFAULT_ORG
) -> dg.AssetsDefinition:
    """`removed_records` for the searched entities of `entities`, named for `org`."""
    watched = searched(entities)

    @dg.asset(
        key=org.asset_key(REMOVED_RECORDS),
        group_name=org.group_name(RAW_GROUP),
        kinds={"kustomer", "delta", "polars"},
        owners=OWNERS,
        pool=org.pool,
        deps=org.asset_keys(spec.name for spec in watched),
        required_resource_keys={org.kustomer_key, org.lake_key},
        freshness_policy=REMOVALS_FRESHNESS,
        description=(
            "Records Kustomer no longer returns: conversations, messages, notes, customers and "
            "custom objects that were hard-deleted (a purge, a GDPR erasure) or, for customers, "
            "merged into another customer (`merged_into_id`), while our tables still hold them. "
            "One row per such record, with when we first noticed and the last version we hold. "
            "`feedback` leaves them out and shows a merged customer's survivor. Found by listing "
            "ids only (cheap), and confirmed before marking."
        ),
        metadata={
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(name, str(dtype), description=COLUMN_DESCRIPTIONS[name])
                    for name, dtype in REMOVED_RECORDS_SCHEMA.items()
                ]
            )
        },
    )
    def removed_records(
        context: dg.AssetExecutionContext, config: RemovedRecordsConfig
    ) -> dg.MaterializeResult:
        kustomer, lake = org.kustomer(context), org.lake(context)
        started = time.monotonic()
        log = context.log
        store = lake.store()
        reconciled: list[EntityReconciliation] = []
        skipped: dict[str, str] = {}
        with one_sentence_failures(REMOVED_RECORDS, kustomer, lake):
            store.check()
            exists = store.exists(REMOVED_RECORDS)
            earlier = store.scan(REMOVED_RECORDS).collect() if exists else empty_rows()
            searchable_since = datetime.now(UTC) - SEARCH_HORIZON + timedelta(days=1)
            with kustomer.client(logger=log) as client:
                for spec in watched:
                    if (off := switched_off_reason(spec, kustomer)) is not None:
                        skipped[spec.name] = off
                        continue
                    if not store.exists(spec.name):
                        skipped[spec.name] = "no table yet"
                        continue
                    try:
                        result = reconcile_entity(
                            client,
                            store,
                            spec,
                            earlier.filter(pl.col("entity") == spec.name),
                            searchable_since=searchable_since,
                            max_candidate_share=config.max_candidate_share,
                        )
                    except KustomerPermissionError as error:
                        if spec.required or role_required(error.role or "", entities):
                            raise
                        log.warning("%s not reconciled: %s", spec.name, error)
                        skipped[spec.name] = f"missing role {error.role or spec.role}"
                        continue
                    except ImplausibleRemovalsError as error:
                        raise dg.Failure(
                            description=str(error),
                            metadata={
                                "entity": spec.name,
                                "kustomer/requests": client.stats.requests,
                            },
                        ) from None
                    reconciled.append(result)
                    log.info(
                        "%s: %d listed, %d candidates, %d removed, %d merged, %d requests",
                        spec.name,
                        len(result.listing.ids),
                        result.candidates,
                        result.removed,
                        result.merged,
                        result.requests,
                    )
                stats = client.stats.as_dict()
                page_size = client.settings.search_page_size
            rows = pl.concat([r.rows for r in reconciled] or [empty_rows()], how="vertical")
            version = replace_rows_where(
                store.uri(REMOVED_RECORDS),
                rows,
                "entity",
                [r.entity for r in reconciled],
                store.storage_options,
            )
        total = (
            store.scan(REMOVED_RECORDS).select(pl.len()).collect().item()
            if store.exists(REMOVED_RECORDS)
            else 0
        )
        metadata: dict[str, object] = {
            "dagster/row_count": total,
            "dagster/uri": store.uri(REMOVED_RECORDS),
            "table_changed": version is not None,
            "delta_version": version,
            "requests": int(stats["requests"]),
            # The README's formula; more requests than this are retries.
            "requests_by_formula": sum(r.expected_requests(page_size) for r in reconciled),
            "skipped": dg.MetadataValue.json(skipped),
            "reconciliation": dg.MetadataValue.json({r.entity: r.summary() for r in reconciled}),
            "seconds": round(time.monotonic() - started, 2),
        }
        for r in reconciled:
            metadata.update(
                {
                    f"{r.entity}_listed": len(r.listing.ids),
                    f"{r.entity}_candidates": r.candidates,
                    f"{r.entity}_removed": r.removed,
                    f"{r.entity}_merged": r.merged,
                }
            )
        metadata.update({f"kustomer/{k}": v for k, v in stats.items()})
        return dg.MaterializeResult(metadata=metadata)

    return removed_records


removed_records = build_removed_records()
