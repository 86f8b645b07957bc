"""Resources built from the environment, so one code path serves the demo and production.

Secrets go through `dg.EnvVar` (the API key, and the object-store credentials of an `s3://`,
`gs://` or `az://` root): Dagster then stores the variable's name in run config and the UI, never
the value, and reads the value when a run starts. The other settings are not secret and are read
when the code loads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import dagster as dg

from kustomer_assets.entities import ENTITIES, EntitySpec
from kustomer_assets.environment import bool_env, positive_int_env
from kustomer_assets.kustomer.resource import KustomerResource
from kustomer_assets.kustomer.settings import KustomerSettings
from kustomer_assets.lake.resource import DeltaLakeResource

DEFAULT_DELTA_ROOT = "data/delta"


def switched_off_from_env(entities: Iterable[EntitySpec] = ENTITIES) -> list[str]:
    """Entities whose toggle variable says false (a spec entry names its variable)."""
    return [spec.name for spec in entities if spec.toggle and not bool_env(spec.toggle.env, True)]


def kustomer_from_env() -> KustomerResource:
    """The Kustomer resource from KUSTOMER_* variables; an unset one takes the default that
    `KustomerSettings` holds, the one place defaults are written."""
    defaults = KustomerSettings
    return KustomerResource(
        subdomain=os.getenv("KUSTOMER_SUBDOMAIN", ""),
        api_key=dg.EnvVar("KUSTOMER_API_KEY"),
        base_url=os.getenv("KUSTOMER_BASE_URL") or None,
        org_requests_per_minute=positive_int_env(
            "KUSTOMER_ORG_REQUESTS_PER_MINUTE", defaults.org_requests_per_minute
        ),
        search_requests_per_minute=positive_int_env(
            "KUSTOMER_SEARCH_REQUESTS_PER_MINUTE", defaults.search_requests_per_minute
        ),
        search_verify=os.getenv("KUSTOMER_SEARCH_VERIFY", defaults.search_verify),
        switched_off=switched_off_from_env(),
    )


STORAGE_VARIABLES: dict[str, dict[str, bool]] = {
    "s3": {
        "AWS_ENDPOINT_URL": False,
        "AWS_REGION": False,
        "AWS_DEFAULT_REGION": False,
        "AWS_ACCESS_KEY_ID": True,
        "AWS_SECRET_ACCESS_KEY": True,
        "AWS_SESSION_TOKEN": True,
        "AWS_PROFILE": False,
        "AWS_ALLOW_HTTP": False,
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": False,
        "AWS_CONDITIONAL_PUT": False,
        "AWS_S3_ALLOW_UNSAFE_RENAME": False,
        "AWS_S3_LOCKING_PROVIDER": False,
        "DELTA_DYNAMO_TABLE_NAME": False,
    },
    "gs": {
        "GOOGLE_SERVICE_ACCOUNT": False,  # a path to the key file
        "GOOGLE_APPLICATION_CREDENTIALS": False,  # a path too
        "GOOGLE_SERVICE_ACCOUNT_KEY": True,  # the key itself (JSON)
    },
    "az": {
        "AZURE_STORAGE_ACCOUNT_NAME": False,
        "AZURE_STORAGE_ACCOUNT_KEY": True,
        "AZURE_STORAGE_SAS_TOKEN": True,
        "AZURE_STORAGE_CLIENT_ID": False,
        "AZURE_STORAGE_CLIENT_SECRET": True,
        "AZURE_STORAGE_TENANT_ID": False,
        "AZURE_STORAGE_TOKEN": True,
        "AZURE_STORAGE_ENDPOINT": False,
        "AZURE_STORAGE_USE_EMULATOR": False,
        "AZURE_USE_AZURE_CLI": False,
    },
}
"""Object-store variables passed to delta-rs, per family, and whether each is a secret.

delta-rs would read most of them from the environment by itself; passing them explicitly makes
every reader of `DeltaStore` (the writers, polars scans, the root check, which redacts their
values from its messages) use the same settings."""

_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs"} | dict.fromkeys(
    ("az", "abfs", "abfss", "azure", "adl"), "az"
)


def storage_options_from_env(root: str) -> dict[str, str]:
    """Storage options for `root` from the variables that are set (none for a local root).

    Secret ones are `dg.EnvVar`s, so their values never enter resource config, run config or
    the UI; the others are plain values (an endpoint or a region helps when shown).
    """
    family = _SCHEMES.get(root.split("://", 1)[0].lower()) if "://" in root else None
    options: dict[str, str] = {}
    for name, secret in STORAGE_VARIABLES.get(family or "", {}).items():
        if os.getenv(name):
            options[name] = dg.EnvVar(name) if secret else os.environ[name]
    return options


def lake_from_env() -> DeltaLakeResource:
    root = os.getenv("KUSTOMER_DELTA_ROOT") or DEFAULT_DELTA_ROOT
    return DeltaLakeResource(root=root, storage_options=storage_options_from_env(root))


def resources_from_env() -> dict[str, dg.ConfigurableResource]:
    return {"kustomer": kustomer_from_env(), "lake": lake_from_env()}
