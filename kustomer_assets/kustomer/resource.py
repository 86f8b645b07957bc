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

from kustomer_assets.kustomer.client import KustomerClient
from kustomer_assets.kustomer.settings import KustomerSettings


class KustomerResource(dg.ConfigurableResource):
    """Kustomer API access for the raw-entity assets (one pooled HTTP client per run)."""

    subdomain: str = Field(
        default="",
        description="Org subdomain: `acme` for https://acme.api.kustomerapp.com "
        "(KUSTOMER_SUBDOMAIN).",
    )
    api_key: str = Field(
        description="API key of a Kustomer machine user; set it through KUSTOMER_API_KEY, "
        "never inline.",
    )
    base_url: str | None = Field(
        default=None,
        description=(
            "Full API root replacing https://<subdomain>.api.kustomerapp.com, e.g. "
            "https://api.prod2.kustomerapp.com for EU orgs (KUSTOMER_BASE_URL)."
        ),
    )
    search_page_size: int = Field(default=500, description="Records per search page (max 500).")
    list_page_size: int = Field(default=100, description="Records per list page (max 100).")
    org_requests_per_minute: int = Field(
        default=500,
        description="Requests/min this connector may use of the org-wide budget shared by all apps "
        "(default: half of the Enterprise plan's 1,000).",
    )
    search_requests_per_minute: int = Field(
        default=50,
        description="Search requests/min (API keys get 100/min; default leaves half to others).",
    )
    timeout_seconds: float = Field(default=30.0, description="Per-request timeout.")
    max_retries: int = Field(default=5, description="Retries on 5xx, timeouts and broken bodies.")
    backoff_base_seconds: float = Field(default=0.5, description="First retry delay; doubles.")
    max_rate_limit_wait_seconds: float = Field(
        default=900.0, description="How long one request may wait out 429s before the run fails."
    )
    search_verify: str = Field(
        default="auto",
        description="After each search window, prove it complete by ids: 'auto' lists ids "
        "only when counts show records moved during the run (one request otherwise); 'always' "
        "lists them every time (KUSTOMER_SEARCH_VERIFY).",
    )

    ingest_messages: bool = Field(
        default=True,
        description="Land the messages table (KUSTOMER_INGEST_MESSAGES); off for users who "
        "only want conversations.",
    )
    fetch_csat_responses: bool = Field(
        default=True,
        description="Fetch CSAT free-text answers, one request per conversation whose "
        "satisfaction changed (KUSTOMER_FETCH_CSAT_RESPONSES); scores come with conversations.",
    )

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
