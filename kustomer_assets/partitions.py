"""The daily partitioning every Kustomer table shares."""

from __future__ import annotations

import dagster as dg

from kustomer_assets.environment import date_env

PARTITIONS_START = date_env("KUSTOMER_PARTITIONS_START", "2025-01-01")
"""First day offered in the UI. Kustomer search covers only the last two years of updates, so
an older start only adds days that the assets will refuse with an explanation. The demo sets
it to its own first day, so the UI counts only the days the demo could load."""

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=PARTITIONS_START,
    timezone="UTC",
    # end_offset=1 makes today's still-open day materializable, so intraday refreshes land.
    end_offset=1,
)
