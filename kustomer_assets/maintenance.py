"""Weekly lake maintenance: compact small files, then vacuum files no version still needs.

Why it is needed: re-materializing a day writes that day's rows to new Parquet files and only
*marks* the old files removed in the Delta log (so a reader in the middle of a scan, or anyone
reading an older version, still finds them). Reruns, the change sensor's intraday refreshes,
the nightly finalization and feedback's merges therefore keep adding files: storage grows, and
many small files slow every scan. Readers that go through the log see the right rows all
along; only a glob over the Parquet files over-counts (README, "Reading the tables").

`kustomer_lake_maintenance` (job; `kustomer_lake_maintenance_weekly` schedule, Sunday 04:00
UTC, created stopped) does, for every Delta table under the lake root:

1. `optimize.compact()`: rewrites each partition's small files into few large ones in one
   commit (same rows; a commit that meets a concurrent writer is retried, and a table that
   keeps conflicting is reported and left for next week);
2. `vacuum(full=True)`: deletes the files that no version younger than the retention period
   references, which includes the files compaction just replaced once they are old enough, and
   orphans of killed writes (written but never committed).

Retention (KUSTOMER_VACUUM_RETENTION_HOURS, default 168 = delta-rs' and Delta's default
`delta.deletedFileRetentionDuration`) is never shorter than the table's own setting unless run
config says `force_retention: true`. The minimum exists because a vacuum deletes the files of
every version older than the retention: a reader that opened such a version (a long query, a
backfill's writer about to commit against the snapshot it read, feedback's incremental build,
which diffs each input against the version it last read and falls back to a full rebuild when
that version is gone) then fails, and time travel stops at the retention. Forcing is for a
one-off clean-up when nothing reads older versions, or for tests.

Each table gets an `AssetObservation` (the table's asset key) with files before/after, files
compacted and vacuumed, and bytes removed; the op's output metadata sums them up.
"""

import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import dagster as dg
import pyarrow.fs as pafs
from deltalake import DeltaTable
from deltalake.fs import DeltaStorageHandler

from kustomer_assets.environment import positive_int_env
from kustomer_assets.lake import DeltaStore, is_commit_conflict
from kustomer_assets.org import DEFAULT_ORG, Org

RETENTION_VARIABLE = "KUSTOMER_VACUUM_RETENTION_HOURS"
DEFAULT_RETENTION_HOURS = 168
"""Delta's default `delta.deletedFileRetentionDuration` (one week)."""

COMPACT_ATTEMPTS = 3
_RETRY_SECONDS = 2.0

_DURATION = re.compile(r"interval\s+(\d+)\s+(\w+?)s?$", re.IGNORECASE)
_HOURS_PER_UNIT = {
    "second": 1 / 3600,
    "minute": 1 / 60,
    "hour": 1,
    "day": 24,
    "week": 168,
}


class MaintenanceConfig(dg.Config):
    retention_hours: int | None = None
    """Hours a replaced file is kept; unset = KUSTOMER_VACUUM_RETENTION_HOURS, else 168."""
    force_retention: bool = False
    """Allow a retention below the table's `delta.deletedFileRetentionDuration` (see module
    doc for what that breaks)."""
    tables: list[str] | None = None
    """Only these tables; unset = every Delta table under the lake root."""


class RetentionTooShortError(Exception):
    """The retention asked for would delete files that readers of recent versions may need."""


@dataclass
class TableMaintenance:
    """What maintenance did to one table (the observation's metadata)."""

    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    active_files_before: int
    active_files_after: int
    files_compacted: int
    files_written_by_compaction: int
    files_vacuumed: int
    bytes_removed: int
    retention_hours: int
    version_before: int
    version_after: int


def table_minimum_retention_hours(table: DeltaTable) -> float:
    """The table's `delta.deletedFileRetentionDuration` in hours (delta-rs' floor for vacuum)."""
    setting = table.metadata().configuration.get("delta.deletedFileRetentionDuration")
    match = _DURATION.match((setting or "").strip())
    if not match or match.group(2).lower() not in _HOURS_PER_UNIT:
        return DEFAULT_RETENTION_HOURS
    return int(match.group(1)) * _HOURS_PER_UNIT[match.group(2).lower()]


def list_tables(store: DeltaStore) -> list[str]:
    """Names of the Delta tables directly under the root (local folder or object store)."""
    handler = DeltaStorageHandler(store.root, store.storage_options)
    names = [
        info.path.rstrip("/").rsplit("/", 1)[-1]
        for info in handler.get_file_info_selector(
            pafs.FileSelector("", allow_not_found=True, recursive=False)
        )
        if info.type == pafs.FileType.Directory
    ]
    return sorted(n for n in names if not n.startswith((".", "_")) and store.exists(n))


def _data_files(store: DeltaStore, table: str) -> dict[str, int]:
    """Every data file in the table's folder (committed, replaced or orphaned), by path
    relative to the table, with its size; the log and hidden files are not data."""
    handler = DeltaStorageHandler(store.uri(table), store.storage_options)
    files = handler.get_file_info_selector(
        pafs.FileSelector("", allow_not_found=True, recursive=True)
    )
    return {
        info.path.lstrip("/"): int(info.size or 0)
        for info in files
        if info.type == pafs.FileType.File
        and not any(part.startswith(("_", ".")) for part in info.path.split("/"))
    }


def _compact(store: DeltaStore, table: str) -> dict:
    for attempt in range(1, COMPACT_ATTEMPTS + 1):
        try:
            delta = DeltaTable(store.uri(table), storage_options=store.storage_options)
            return delta.optimize.compact()
        except Exception as error:
            if not is_commit_conflict(error) or attempt == COMPACT_ATTEMPTS:
                raise
            time.sleep(_RETRY_SECONDS * attempt)
    raise AssertionError("unreachable")


def maintain_table(
    store: DeltaStore, table: str, retention_hours: int, force: bool = False
) -> TableMaintenance:
    """Compact then vacuum one table; raise `RetentionTooShortError` before touching it when
    the retention is below the table's minimum and `force` is not set."""
    delta = DeltaTable(store.uri(table), storage_options=store.storage_options)
    minimum = table_minimum_retention_hours(delta)
    if retention_hours < minimum and not force:
        raise RetentionTooShortError(
            f"{RETENTION_VARIABLE} (or run config retention_hours) is {retention_hours}, below "
            f"the {minimum:g} hours table `{table}` keeps replaced files for "
            "(delta.deletedFileRetentionDuration): a vacuum that soon deletes files that a "
            "running reader, a writer about to commit, or feedback's incremental build may "
            f"still read. Use at least {minimum:g}, or set force_retention: true in run config "
            "if nothing reads older versions."
        )
    version_before = delta.version()
    active_before = len(delta.file_uris())
    files_before = _data_files(store, table)

    compacted = _compact(store, table)

    delta = DeltaTable(store.uri(table), storage_options=store.storage_options)
    sizes = _data_files(store, table)
    vacuumed = delta.vacuum(
        retention_hours=retention_hours,
        dry_run=False,
        enforce_retention_duration=not force,
        full=True,
    )
    bytes_removed = sum(sizes.get(path.lstrip("/"), 0) for path in vacuumed)

    delta = DeltaTable(store.uri(table), storage_options=store.storage_options)
    files_after = _data_files(store, table)
    return TableMaintenance(
        files_before=len(files_before),
        files_after=len(files_after),
        bytes_before=sum(files_before.values()),
        bytes_after=sum(files_after.values()),
        active_files_before=active_before,
        active_files_after=len(delta.file_uris()),
        files_compacted=int(compacted.get("numFilesRemoved", 0)),
        files_written_by_compaction=int(compacted.get("numFilesAdded", 0)),
        files_vacuumed=len(vacuumed),
        bytes_removed=bytes_removed,
        retention_hours=retention_hours,
        version_before=version_before,
        version_after=delta.version(),
    )


def build_lake_maintenance(
    org: Org = DEFAULT_ORG,
) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The maintenance job of the org's lake root and its weekly schedule (created stopped)."""

    @dg.op(
        name=org.name("compact_and_vacuum"),
        out=dg.Out(dg.Nothing),
        description="Compact small files and vacuum replaced ones in every table under the root.",
        required_resource_keys={org.lake_key},
    )
    def compact_and_vacuum(
        context: dg.OpExecutionContext, config: MaintenanceConfig
    ) -> Iterator[dg.AssetObservation | dg.Output]:
        retention = (
            config.retention_hours
            if config.retention_hours is not None
            else positive_int_env(RETENTION_VARIABLE, DEFAULT_RETENTION_HOURS)
        )
        if retention < 0:
            raise dg.Failure(f"retention_hours must be 0 or more, got {retention}.")
        store = org.lake(context).store()
        tables = config.tables if config.tables is not None else list_tables(store)
        done: dict[str, TableMaintenance] = {}
        failed: dict[str, str] = {}
        for table in tables:
            try:
                result = maintain_table(store, table, retention, config.force_retention)
            except RetentionTooShortError as error:
                # The same setting would be refused for every table: stop before touching any more.
                raise dg.Failure(str(error)) from None
            except Exception as error:
                failed[table] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                context.log.warning(
                    f"maintenance of `{table}` failed, left as it was: {failed[table]}"
                )
                continue
            done[table] = result
            context.log.info(
                f"{table}: {result.files_before} → {result.files_after} files, "
                f"{result.bytes_removed} bytes removed"
            )
            yield dg.AssetObservation(
                asset_key=org.asset_key(table),
                description="kustomer_lake_maintenance: compact + vacuum",
                metadata={f"maintenance/{k}": v for k, v in asdict(result).items()},
            )
        if failed:
            raise dg.Failure(
                f"maintenance failed for {len(failed)} of {len(tables)} tables "
                f"({', '.join(sorted(failed))}); the others were compacted and vacuumed.",
                metadata={"failed": failed},
            )
        rows = "\n".join(
            f"| {t} | {r.files_before} | {r.files_after} | {r.files_vacuumed} | {r.bytes_removed} |"
            for t, r in done.items()
        )
        yield dg.Output(
            None,
            metadata={
                "tables": len(done),
                "retention_hours": retention,
                "files_before": sum(r.files_before for r in done.values()),
                "files_after": sum(r.files_after for r in done.values()),
                "bytes_removed": sum(r.bytes_removed for r in done.values()),
                "per_table": dg.MetadataValue.md(
                    "| table | files before | files after | vacuumed | bytes removed |\n"
                    f"|---|---|---|---|---|\n{rows}"
                ),
            },
        )

    @dg.job(
        name=org.name("kustomer_lake_maintenance"),
        description=(
            "Compacts and vacuums every Delta table under KUSTOMER_DELTA_ROOT "
            f"(retention {RETENTION_VARIABLE}, default {DEFAULT_RETENTION_HOURS} h)."
        ),
        tags={"kustomer/maintenance": "true"},
    )
    def kustomer_lake_maintenance() -> None:
        compact_and_vacuum()

    weekly = dg.ScheduleDefinition(
        name=org.name("kustomer_lake_maintenance_weekly"),
        job=kustomer_lake_maintenance,
        cron_schedule="0 4 * * 0",
        execution_timezone="UTC",
        # Deleting files is a decision an operator turns on, once the retention fits the readers.
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Sunday 04:00 UTC, after the nightly finalization (02:00).",
    )

    return kustomer_lake_maintenance, weekly


kustomer_lake_maintenance, kustomer_lake_maintenance_weekly = build_lake_maintenance()
compact_and_vacuum = kustomer_lake_maintenance.graph.node_defs[0]


__all__ = [
    "DEFAULT_RETENTION_HOURS",
    "RETENTION_VARIABLE",
    "compact_and_vacuum",
    "kustomer_lake_maintenance",
    "kustomer_lake_maintenance_weekly",
    "list_tables",
    "maintain_table",
]
