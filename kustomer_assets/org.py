"""What one Kustomer org's definitions are called in a code location.

A code location may serve several orgs (two brands on two Kustomer orgs, a vendor with many
clients): each org's assets, resources, concurrency pool, sensors, schedules and jobs then need
names of their own, or Dagster merges them into one (a shared cursor, a shared pool slot, one
resource serving both). Every builder takes an `Org` and asks it for names instead of writing
them: the default `Org()` (no prefix) keeps this repository's own single-org names, so
`acme/conversations` and plain `conversations` come from the same code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import dagster as dg

from kustomer_assets.kustomer.resource import KustomerResource
from kustomer_assets.lake.resource import DeltaLakeResource

_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

RAW_GROUP = "kustomer_raw"
FEEDBACK_GROUP = "kustomer_feedback"
KUSTOMER_POOL = "kustomer_api"
"""Dagster concurrency pool shared by every asset that calls Kustomer, so parallel runs stay
inside the org's rate limit (set its limit in the instance: `dagster instance concurrency`)."""


class OrgNameError(ValueError):
    """A prefix Dagster could not use in names."""


@dataclass(frozen=True)
class Org:
    """One org's names: `prefix` "" is the single-org default (names unchanged)."""

    prefix: str = ""
    group: str | None = None
    """One group for every asset of the org; default `<prefix>_kustomer_raw` and
    `<prefix>_kustomer_feedback`."""

    def __post_init__(self) -> None:
        if self.prefix and not _PREFIX.match(self.prefix):
            raise OrgNameError(
                f"Org prefix {self.prefix!r} is not usable as a Dagster name: use letters, "
                "digits and underscores, starting with a letter (e.g. 'acme')."
            )
        if self.group is not None and not _PREFIX.match(self.group):
            raise OrgNameError(
                f"Group {self.group!r} is not usable as a Dagster group name: use letters, "
                "digits and underscores, starting with a letter."
            )

    def asset_key(self, table: str) -> dg.AssetKey:
        """The asset key of a table (`acme/conversations`, or `conversations`)."""
        return dg.AssetKey([self.prefix, table]) if self.prefix else dg.AssetKey(table)

    def asset_keys(self, tables: Any) -> list[dg.AssetKey]:
        return [self.asset_key(table) for table in tables]

    def name(self, base: str) -> str:
        """A sensor, schedule, job or op name (`acme_kustomer_changes`)."""
        return f"{self.prefix}_{base}" if self.prefix else base

    def group_name(self, base: str) -> str:
        return self.group or self.name(base)

    @property
    def kustomer_key(self) -> str:
        """The resource key of the org's Kustomer API resource."""
        return self.name("kustomer")

    @property
    def lake_key(self) -> str:
        """The resource key of the org's Delta root."""
        return self.name("lake")

    @property
    def pool(self) -> str:
        """The org's concurrency pool: each org's API budget is its own."""
        return f"{KUSTOMER_POOL}_{self.prefix}" if self.prefix else KUSTOMER_POOL

    def kustomer(self, context: Any) -> KustomerResource:
        """The org's Kustomer resource from an asset, check, op or sensor context."""
        return getattr(context.resources, self.kustomer_key)

    def lake(self, context: Any) -> DeltaLakeResource:
        return getattr(context.resources, self.lake_key)

    def resources(
        self, kustomer: KustomerResource, lake: DeltaLakeResource
    ) -> dict[str, dg.ConfigurableResource]:
        return {self.kustomer_key: kustomer, self.lake_key: lake}


DEFAULT_ORG = Org()
