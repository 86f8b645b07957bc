"""Writing and reading the Delta tables; knows nothing of Kustomer or HTTP."""

from kustomer_assets.lake.commits import PARTITION_COLUMN, ROW_KEY, is_commit_conflict
from kustomer_assets.lake.partitions import PartitionReplacement, WriteSummary
from kustomer_assets.lake.staging import STAGING_DIR_VARIABLE, staging_root, sweep_staging
from kustomer_assets.lake.store import ROOT_VARIABLE, DeltaStore, StorageRootError

__all__ = [
    "PARTITION_COLUMN",
    "ROOT_VARIABLE",
    "ROW_KEY",
    "STAGING_DIR_VARIABLE",
    "DeltaStore",
    "PartitionReplacement",
    "StorageRootError",
    "WriteSummary",
    "is_commit_conflict",
    "staging_root",
    "sweep_staging",
]
