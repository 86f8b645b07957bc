"""The one Definitions object of the code location (`kustomer_assets.definitions:defs`).

Policies that apply to every asset (freshness) are set here, in one place.
"""

import dagster as dg

from kustomer_assets.assets.feedback import feedback
from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.assets.removals import removed_records
from kustomer_assets.automation import schedules, sensors
from kustomer_assets.checks import freshness_policy, key_check_job, quality_checks, role_checks
from kustomer_assets.maintenance import kustomer_lake_maintenance, kustomer_lake_maintenance_weekly
from kustomer_assets.resources import resources_from_env
from kustomer_assets.run_recovery import killed_run_sensor
from kustomer_assets.webhooks.sensor import kustomer_webhook_events

_freshness = freshness_policy()
assets = [
    *dg.map_asset_specs(
        lambda spec: spec.replace_attributes(freshness_policy=_freshness),
        [*entity_assets, feedback],
    ),
    removed_records,  # runs weekly: it carries its own freshness policy
]

defs = dg.Definitions(
    assets=assets,
    # Every asset waits on the same Kustomer budget (and the `kustomer_api` pool), so a
    # subprocess per step (about 1.5 s each on a 2-core machine, for ~70 assets and checks)
    # buys no parallelism; one process per run is faster end to end.
    executor=dg.in_process_executor,
    asset_checks=[*quality_checks(assets), *role_checks],
    jobs=[key_check_job, kustomer_lake_maintenance],
    schedules=[*schedules, kustomer_lake_maintenance_weekly],
    sensors=[*sensors, killed_run_sensor, kustomer_webhook_events],
    resources=resources_from_env(),
)
