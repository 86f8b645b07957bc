"""The Dagster resource naming where tables are written (KUSTOMER_DELTA_ROOT)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from kustomer_assets.lake.store import DeltaStore


class DeltaLakeResource(dg.ConfigurableResource):
    """Root folder or object-store URI of the Delta tables; each table is `<root>/<name>`."""

    root: str = Field(description="Local path or URI (s3://..., az://..., gs://...).")
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="delta-rs storage options for object stores (credentials via env vars).",
    )

    def store(self) -> DeltaStore:
        return DeltaStore(self.root, self.storage_options)
