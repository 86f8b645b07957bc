"""Resources built from the environment, so one code path serves the demo and production.

Only the API key goes through `dg.EnvVar`: Dagster then stores the variable's name in run config
and the UI, never the key. The other settings are not secret and are read when the code loads.
"""

from __future__ import annotations

import os

import dagster as dg

from kustomer_assets.environment import bool_env, positive_int_env
from kustomer_assets.kustomer.resource import KustomerResource
from kustomer_assets.lake.resource import DeltaLakeResource

DEFAULT_DELTA_ROOT = "data/delta"


def kustomer_from_env() -> KustomerResource:
    return KustomerResource(
        subdomain=os.getenv("KUSTOMER_SUBDOMAIN", ""),
        api_key=dg.EnvVar("KUSTOMER_API_KEY"),
        base_url=os.getenv("KUSTOMER_BASE_URL") or None,
        org_requests_per_minute=positive_int_env("KUSTOMER_ORG_REQUESTS_PER_MINUTE", 500),
        search_requests_per_minute=positive_int_env("KUSTOMER_SEARCH_REQUESTS_PER_MINUTE", 50),
        search_verify=os.getenv("KUSTOMER_SEARCH_VERIFY", "auto"),
        ingest_messages=bool_env("KUSTOMER_INGEST_MESSAGES", True),
        fetch_csat_responses=bool_env("KUSTOMER_FETCH_CSAT_RESPONSES", True),
    )


def lake_from_env() -> DeltaLakeResource:
    return DeltaLakeResource(root=os.getenv("KUSTOMER_DELTA_ROOT") or DEFAULT_DELTA_ROOT)


def resources_from_env() -> dict[str, dg.ConfigurableResource]:
    return {"kustomer": kustomer_from_env(), "lake": lake_from_env()}
