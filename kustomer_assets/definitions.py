"""The Definitions of the code location (`kustomer_assets.definitions:defs`), built from the
spec table.

`build_definitions` turns a tuple of entity specs into everything a code location holds: one
asset per entity, its checks, the sensors and schedule that watch it, the key-check job that
probes its role, and `feedback`. Policies that apply to every asset (freshness) are set here,
in one place.
"""

from collections.abc import Mapping

import dagster as dg

from kustomer_assets.assets.feedback import feedback
from kustomer_assets.assets.raw import build_entity_assets
from kustomer_assets.assets.removals import removed_records
from kustomer_assets.automation import (
    build_finalize_yesterday_schedule,
    build_kustomer_changes_sensor,
    default_automation_condition_sensor,
)
from kustomer_assets.checks import (
    build_key_check_job,
    build_role_checks,
    freshness_policy,
    quality_checks,
)
from kustomer_assets.entities import ENTITIES, EntitySpec
from kustomer_assets.maintenance import kustomer_lake_maintenance, kustomer_lake_maintenance_weekly
from kustomer_assets.resources import resources_from_env
from kustomer_assets.run_recovery import killed_run_sensor
from kustomer_assets.webhooks.sensor import build_kustomer_webhook_events_sensor


def build_definitions(
    entities: tuple[EntitySpec, ...] = ENTITIES,
    resources: Mapping[str, object] | None = None,
) -> dg.Definitions:
    """Everything for `entities`; `resources` default to the environment's (`resources.py`)."""
    freshness = freshness_policy()
    assets = [
        *dg.map_asset_specs(
            lambda spec: spec.replace_attributes(freshness_policy=freshness),
            [*build_entity_assets(entities), feedback],
        ),
        removed_records,  # runs weekly: it carries its own freshness policy
    ]
    return dg.Definitions(
        assets=assets,
        # Every asset waits on the same Kustomer budget (and the `kustomer_api` pool), so a
        # subprocess per step (about 1.5 s each on a 2-core machine, for ~70 assets and
        # checks) buys no parallelism; one process per run is faster end to end.
        executor=dg.in_process_executor,
        asset_checks=[*quality_checks(assets, entities=entities), *build_role_checks(entities)],
        jobs=[build_key_check_job(entities), kustomer_lake_maintenance],
        schedules=[
            build_finalize_yesterday_schedule(entities=entities),
            kustomer_lake_maintenance_weekly,
        ],
        sensors=[
            build_kustomer_changes_sensor(entities=entities),
            default_automation_condition_sensor,
            killed_run_sensor,
            build_kustomer_webhook_events_sensor(entities=entities),
        ],
        resources=dict(resources) if resources is not None else resources_from_env(),
    )


defs = build_definitions()
