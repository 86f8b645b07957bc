"""Asset checks on the Kustomer tables (quality: `quality`; freshness: `freshness`)."""

from kustomer_assets.checks.freshness import freshness_policy, partition_fresh_checks
from kustomer_assets.checks.quality import quality_checks

__all__ = ["freshness_policy", "partition_fresh_checks", "quality_checks"]
