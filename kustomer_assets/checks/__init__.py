"""Asset checks on the Kustomer tables, one module per kind: `uniqueness`, `completeness`,
`references`, `feedback` (assembled by `quality.quality_checks`), `freshness`; API-key roles:
`roles` (per-asset `role_granted` and the `kustomer_key_check` job) over `key_check`."""

from kustomer_assets.checks.freshness import freshness_policy, partition_fresh_checks
from kustomer_assets.checks.quality import quality_checks
from kustomer_assets.checks.roles import (
    build_key_check_job,
    build_role_checks,
    key_check_job,
    role_checks,
)

__all__ = [
    "build_key_check_job",
    "build_role_checks",
    "freshness_policy",
    "key_check_job",
    "partition_fresh_checks",
    "quality_checks",
    "role_checks",
]
