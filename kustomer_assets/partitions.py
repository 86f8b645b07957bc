"""The daily partitioning every Kustomer table shares."""

from __future__ import annotations

import os

import dagster as dg

PARTITIONS_START = os.getenv("KUSTOMER_PARTITIONS_START", "2025-01-01")
"""First day offered in the UI. Kustomer search covers only the last two years of updates, so
an older start only adds days that the assets will refuse with an explanation."""

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=PARTITIONS_START,
    timezone="UTC",
    # end_offset=1 makes today's still-open day materializable, so intraday refreshes land.
    end_offset=1,
)
