"""Writing and reading the Delta tables; knows nothing of Kustomer or HTTP."""

from kustomer_assets.lake.partitions import PartitionReplacement, WriteSummary
from kustomer_assets.lake.store import DeltaStore

__all__ = ["DeltaStore", "PartitionReplacement", "WriteSummary"]
