"""Where the tables live: a local folder or an object-store URI under one root."""

from __future__ import annotations

import os
from datetime import date

import polars as pl
from deltalake import DeltaTable

from kustomer_assets.lake.partitions import PartitionReplacement


class DeltaStore:
    """Maps table names to URIs under `root` and opens reads and partition replacements."""

    def __init__(self, root: str, storage_options: dict[str, str] | None = None) -> None:
        if "://" not in root:
            root = os.path.abspath(os.path.expanduser(root))
            os.makedirs(root, exist_ok=True)
        self.root = root.rstrip("/")
        self.storage_options = storage_options or None

    def uri(self, table: str) -> str:
        return f"{self.root}/{table}"

    def exists(self, table: str) -> bool:
        return DeltaTable.is_deltatable(self.uri(table), storage_options=self.storage_options)

    def replace_days(
        self, table: str, first_day: date, end_day: date, base_schema: dict[str, pl.DataType]
    ) -> PartitionReplacement:
        return PartitionReplacement(
            self.uri(table), first_day, end_day, base_schema, self.storage_options
        )

    def commit_notes(self, table: str, key: str, value: str, limit: int = 500) -> list[dict]:
        """Recent commits whose note has `key == value` (newest first)."""
        if not self.exists(table):
            return []
        history = DeltaTable(self.uri(table), storage_options=self.storage_options).history(limit)
        return [entry for entry in history if entry.get(key) == value]

    def scan(self, table: str) -> pl.LazyFrame:
        """Lazy scan, so filters on `partition_date` prune files before anything is read."""
        return pl.scan_delta(self.uri(table), storage_options=self.storage_options)
