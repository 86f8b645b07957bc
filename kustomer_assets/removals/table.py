"""The `removed_records` table: its name, columns and their descriptions.

One row per record Kustomer no longer returns; how the rows are found is in `removals`.
"""

from __future__ import annotations

import polars as pl

from kustomer_assets.records import TIMESTAMP

REMOVED_RECORDS = "removed_records"

REMOVED_RECORDS_SCHEMA: dict[str, pl.DataType] = {
    "entity": pl.Utf8,
    "id": pl.Utf8,
    "removed_from_kustomer_at": TIMESTAMP,
    "merged_into_id": pl.Utf8,
    "last_updated_at": TIMESTAMP,
}

COLUMN_DESCRIPTIONS = {
    "entity": "Table the record is in (conversations, customers, messages, notes, kobjects).",
    "id": "Kustomer id of the record Kustomer no longer returns.",
    "removed_from_kustomer_at": "When a reconciliation first noticed it was gone (UTC).",
    "merged_into_id": "The record Kustomer merged it into (customers); null when deleted.",
    "last_updated_at": "updated_at of the latest version our table holds (UTC).",
}


def empty_rows() -> pl.DataFrame:
    return pl.DataFrame(schema=REMOVED_RECORDS_SCHEMA)
