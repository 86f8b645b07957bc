"""The Dagster resource that holds Kustomer connection settings and opens clients.

Why a resource: Dagster shows its configuration in the UI and in run config, so the API key is
declared as `EnvVar("KUSTOMER_API_KEY")` -- Dagster then records the variable's name, never its
value -- and everything else (subdomain, budgets, retries) is visible and overridable per run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

from kustomer_assets.environment import as_given
from kustomer_assets.kustomer.client import KustomerClient
from kustomer_assets.kustomer.settings import KustomerSettings


class KustomerResource(dg.ConfigurableResource):
    """Kustomer API access for the raw-entity assets (one pooled HTTP client per run).

    Defaults come from `KustomerSettings`, the one place they are written, so the resource
    shown in the UI and a client built without it agree."""

    subdomain: str = Field(
        default=KustomerSettings.subdomain,
        description="Org subdomain: `acme` for https://acme.api.kustomerapp.com "
        "(KUSTOMER_SUBDOMAIN).",
    )
    api_key: str = Field(
        description="API key of a Kustomer machine user; set it through KUSTOMER_API_KEY, "
        "never inline.",
    )
    setting_names: dict[str, str] = Field(
        default_factory=dict,
        description="How each setting was given, by the variable messages name otherwise "
        "(KUSTOMER_API_KEY: ACME_KEY), so an error names what the user set.",
    )
    base_url: str | None = Field(
        default=KustomerSettings.base_url,
        description=(
            "Full API root replacing https://<subdomain>.api.kustomerapp.com, e.g. "
            "https://api.prod2.kustomerapp.com for EU orgs (KUSTOMER_BASE_URL)."
        ),
    )
    search_page_size: int = Field(
        default=KustomerSettings.search_page_size, description="Records per search page (max 500)."
    )
    list_page_size: int = Field(
        default=KustomerSettings.list_page_size, description="Records per list page (max 100)."
    )
    org_requests_per_minute: int = Field(
        default=KustomerSettings.org_requests_per_minute,
        description="Requests/min this connector may use of the org-wide budget, which every "
        "app and key of the org shares (default: half of the Enterprise plan's 1,000; lower it "
        "on smaller plans). A lower x-ratelimit-limit from the server is adopted.",
    )
    search_requests_per_minute: int = Field(
        default=KustomerSettings.search_requests_per_minute,
        description="Search requests/min. Kustomer gives each API key 100/min and this key is "
        "the connector's own, so the default uses 90% of it, keeping a tenth as head-room.",
    )
    timeout_seconds: float = Field(
        default=KustomerSettings.timeout_seconds, description="Per-request timeout."
    )
    max_retries: int = Field(
        default=KustomerSettings.max_retries,
        description="Retries on 5xx, timeouts and broken bodies.",
    )
    backoff_base_seconds: float = Field(
        default=KustomerSettings.backoff_base_seconds, description="First retry delay; doubles."
    )
    max_rate_limit_wait_seconds: float = Field(
        default=KustomerSettings.max_rate_limit_wait_seconds,
        description="How long one request may wait out 429s before the run fails.",
    )
    search_verify: str = Field(
        default=KustomerSettings.search_verify,
        description="After each search window, prove it complete by ids: 'auto' lists ids "
        "only when counts show records moved during the run (one request otherwise); 'always' "
        "lists them every time (KUSTOMER_SEARCH_VERIFY).",
    )

    switched_off: list[str] = Field(
        default_factory=list,
        description="Tables not to land, by name; the environment fills it from each "
        "table's toggle variable set to false (KUSTOMER_INGEST_MESSAGES=false switches "
        "messages off, KUSTOMER_FETCH_CSAT_RESPONSES=false the CSAT responses).",
    )

    def explain(self, error: Exception | str) -> str:
        """The error's sentence naming the settings as the user gave them: messages name the
        single-org environment variables, a component's org has its own names."""
        return as_given(error, self.setting_names)

    def settings(self) -> KustomerSettings:
        return KustomerSettings(
            subdomain=self.subdomain,
            api_key=self.api_key,
            base_url=self.base_url or None,
            search_page_size=self.search_page_size,
            list_page_size=self.list_page_size,
            org_requests_per_minute=self.org_requests_per_minute,
            search_requests_per_minute=self.search_requests_per_minute,
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
            backoff_base_seconds=self.backoff_base_seconds,
            max_rate_limit_wait_seconds=self.max_rate_limit_wait_seconds,
            search_verify=self.search_verify,
        )

    @contextmanager
    def client(self, logger: logging.Logger | None = None) -> Iterator[KustomerClient]:
        """A client for one run; validation errors surface before any request is sent."""
        with KustomerClient(self.settings(), logger=logger) as client:
            yield client
