"""The Kustomer component: the whole connector for one org from a `defs.yaml`.

A Dagster project adds Kustomer the way it adds dbt or Sling: `dg scaffold defs
kustomer_assets.component.KustomerComponent kustomer` writes a `defs.yaml`, the user fills
in the org, and `dg list components` shows the type (registered under the
`dagster_dg_cli.registry_modules` entry point in pyproject). Each instance builds what
`factory.kustomer_definitions` builds; two instances with different `prefix`es serve two
orgs in one code location.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster.components.component_scaffolding import scaffold_component
from pydantic import Field

from kustomer_assets.factory import kustomer_definitions

EXAMPLE_ATTRIBUTES = {
    "subdomain": "acme",
    "api_key_env": "KUSTOMER_API_KEY",
    "delta_root": "data/kustomer/delta",
    "prefix": "kustomer",
    "automation": False,
}
"""What `dg scaffold defs` writes: the settings a new user must look at. The prefix keeps the
tables' keys (`kustomer/customers`, `kustomer/users`) apart from the project's own assets."""


class KustomerComponentScaffolder(dg.Scaffolder):
    """Writes a `defs.yaml` with the settings to fill in, instead of empty attributes."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        scaffold_component(request, dict(EXAMPLE_ATTRIBUTES))


@dg.scaffold_with(KustomerComponentScaffolder)
class KustomerComponent(dg.Component, dg.Resolvable, dg.Model):
    """One Kustomer org as daily-partitioned Delta tables: an asset per entity (conversations,
    messages, customers, agents, notes, CSAT ...), the analysis-ready `feedback` table, data
    quality and role checks, the change and webhook sensors and the nightly schedule."""

    subdomain: str | None = Field(
        default=None,
        description="The org's subdomain: `acme` for https://acme.api.kustomerapp.com.",
    )
    base_url: str | None = Field(
        default=None,
        description="Full API base URL instead of a subdomain (a proxy, a regional host, a "
        "local emulator).",
    )
    api_key_env: str = Field(
        default="KUSTOMER_API_KEY",
        description="NAME of the environment variable holding the API key (never the key): "
        "Dagster reads it when a run starts and shows only the name.",
    )
    delta_root: str | None = Field(
        default=None,
        description="Folder (relative to the project) or s3://, gs://, az:// URI of the "
        "org's Delta tables; each org needs its own. Unset without a prefix: "
        "KUSTOMER_DELTA_ROOT, else data/delta.",
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="Non-secret delta-rs storage options (AWS_REGION, AWS_ENDPOINT_URL ...).",
    )
    storage_option_env: dict[str, str] = Field(
        default_factory=dict,
        description="Secret storage options, each as the NAME of the variable holding it "
        "(AWS_SECRET_ACCESS_KEY: ACME_S3_SECRET).",
    )
    entities: list[str] | None = Field(
        default=None,
        description="Entities to load (conversations, messages, customers, users, teams, "
        "notes, satisfaction, ...); all when unset.",
    )
    switched_off: list[str] | None = Field(
        default=None,
        description="Toggled entities not to land (messages, satisfaction); unset: each "
        "entity's toggle variable (KUSTOMER_INGEST_MESSAGES ...), without a prefix.",
    )
    org_requests_per_minute: int | None = Field(
        default=None,
        description="This connector's share of the org's API budget (default 500 of 1,000).",
    )
    search_requests_per_minute: int | None = Field(
        default=None, description="Searches per minute for this key (default 90 of 100)."
    )
    freshness_warn_hours: float | None = Field(
        default=None, description="A table or partition older than this is late (26 h)."
    )
    freshness_fail_hours: float | None = Field(
        default=None, description="A table or partition older than this fails (50 h)."
    )
    first_sync_days: int | None = Field(
        default=None, description="Days the change sensor's first tick loads (7)."
    )
    automation: bool | None = Field(
        default=None,
        description="Start the change and webhook sensors and the nightly schedule running "
        "(they spend API budget); unset: KUSTOMER_AUTOMATION_RUNNING, else stopped.",
    )
    prefix: str = Field(
        default="",
        description="Asset key prefix and name prefix of this org's resources, pool, sensors, "
        "schedules and jobs (`acme` gives acme/conversations, pool kustomer_api_acme). "
        "Required when the code location serves several orgs.",
    )
    group: str | None = Field(
        default=None,
        description="One asset group for the org; default <prefix>_kustomer_raw and "
        "<prefix>_kustomer_feedback.",
    )
    webhook_store: str | None = Field(
        default=None,
        description="Local folder of the org's webhook event log; default beside a local "
        "delta_root (webhooks off for an object-store root without it).",
    )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return kustomer_definitions(**self.model_dump(), base_dir=Path(context.project_root))
