"""Which roles an API key carries, found by asking Kustomer with the smallest possible requests.

`probes`: which requests to send and what each role unlocks and whether a run needs it, all
read from the entity specs; `probing`: sending them and classifying the answers; `report`: the
rows and their rendering. The console command (`kustomer-assets check`) is in `cli.py`, the
Dagster job and the per-asset `role_granted` checks in `checks.roles`.
"""

from kustomer_assets.checks.key_check.probes import (
    SEARCH,
    Probe,
    key_probes,
    role_required,
    search_probe,
    unlocks,
)
from kustomer_assets.checks.key_check.probing import check_key, check_role, run_probe
from kustomer_assets.checks.key_check.report import (
    ERROR,
    MISSING,
    PRESENT,
    UNKNOWN,
    KeyReport,
    RoleRow,
    Status,
)

__all__ = [
    "ERROR",
    "MISSING",
    "PRESENT",
    "SEARCH",
    "UNKNOWN",
    "KeyReport",
    "Probe",
    "RoleRow",
    "Status",
    "check_key",
    "check_role",
    "key_probes",
    "role_required",
    "run_probe",
    "search_probe",
    "unlocks",
]
