"""What every Delta writer here shares: the table's row key and partition column, telling a
lost commit race from a real failure, and creating a table exactly once.

The row key and partition column are the lake's layout, not a source's: every table is
partitioned by day on `PARTITION_COLUMN` and holds each version `ROW_KEY` once. Record mapping
stamps those columns on its rows and imports them from here.
"""

from __future__ import annotations

import re

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError

PARTITION_COLUMN = "partition_date"
"""The daily partition column every table has (a `Date`)."""

ROW_KEY = ("id", "updated_at")
"""What identifies one version of a record: a day's rows hold each at most once."""

_CONFLICT_MESSAGE = re.compile(
    r"concurrent|version \d+ already exists|version already exists|conflict"
    r"|protocol changed|metadata changed",
    re.IGNORECASE,
)


def is_commit_conflict(error: BaseException) -> bool:
    """A commit lost the race with another writer: worth re-reading the table and retrying."""
    return isinstance(error, CommitFailedError) or (
        isinstance(error, Exception) and bool(_CONFLICT_MESSAGE.search(str(error)))
    )


def create_table_once(
    uri: str,
    schema: pa.Schema,
    partition_by: list[str] | None,
    storage_options: dict[str, str] | None = None,
) -> None:
    """Create an empty table, unless one exists (a concurrent writer may create it first:
    then that one is kept).

    Why before the first write, in a commit of its own: delta-rs checks a write for conflicts
    against the snapshot it read, and a writer that found no table has none. When writers
    race to create a table, delta-rs retries each loser's creating commit as if nothing had
    happened: an overwrite of days then removes nothing, so the days both wrote are doubled,
    and the loser's schema replaces the winner's. A creating commit that delta-rs may not
    retry (`max_commit_retries=0`) is won by exactly one writer, and every write after it has
    a snapshot to be checked against.
    """
    if DeltaTable.is_deltatable(uri, storage_options=storage_options):
        return
    try:
        DeltaTable.create(
            uri,
            schema,
            mode="ignore",
            partition_by=partition_by,
            storage_options=storage_options,
            commit_properties=CommitProperties(max_commit_retries=0),
        )
    except Exception:
        if not DeltaTable.is_deltatable(uri, storage_options=storage_options):
            raise  # not a lost race: the root or the schema is the problem
