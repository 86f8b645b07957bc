"""Asset checks on the Kustomer tables (quality: `quality`; freshness: `freshness`; API-key
roles: `roles`, with the `kustomer_key_check` job)."""

from kustomer_assets.checks.freshness import freshness_policy, partition_fresh_checks
from kustomer_assets.checks.quality import quality_checks
from kustomer_assets.checks.roles import key_check_job, role_checks

__all__ = [
    "freshness_policy",
    "key_check_job",
    "partition_fresh_checks",
    "quality_checks",
    "role_checks",
]
