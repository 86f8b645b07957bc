"""Where the tables live: a local folder or an object-store URI under one root."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import polars as pl
from deltalake import DeltaTable
from deltalake.fs import DeltaStorageHandler

from kustomer_assets.lake import tables, versions
from kustomer_assets.lake.partitions import PartitionReplacement
from kustomer_assets.lake.staging import sweep_staging

ROOT_VARIABLE = "KUSTOMER_DELTA_ROOT"
"""The setting users change when the root is wrong, named in every `StorageRootError`."""

PROBE_TIMEOUT_SECONDS = 5.0
"""How long `check()` waits for an object store before calling it unreachable."""

_PROBE_OPTIONS = {
    "timeout": "4s",
    "connect_timeout": "2s",
    "max_retries": "1",
    "retry_timeout": "4s",
}
"""Short client timeouts for the probe only: delta-rs' defaults retry for minutes."""

PREFETCH_THREADS = 8
"""Tables a `PinnedStore` opens at once: opening is mostly waiting on the log's files."""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class StorageRootError(Exception):
    """The storage root cannot hold tables; the message says why and what to change."""


def _shown_root(root: str) -> str:
    """The root without user info or query (an Azure SAS token, `key:secret@`), for messages."""
    if "://" not in root:
        return root
    parts = urlsplit(root)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _reason(error: BaseException, secret_values: list[str]) -> str:
    """The innermost cause of a delta-rs error on one line, with every secret value removed."""
    lines = [_ANSI.sub("", line).strip(" ↳\t") for line in str(error).splitlines()]
    text = next((line for line in reversed(lines) if line), type(error).__name__)
    for value in secret_values:
        text = text.replace(value, "***")
    text = re.sub(r"\.\s+", "; ", text).rstrip(". ")
    return text[:200]


class DeltaStore:
    """Maps table names to URIs under `root` and opens reads and partition replacements.

    Construction never fails on a bad root, so that definitions load and the UI can show the
    problem; `check()` (called when a run starts) says what is wrong with it.
    """

    def __init__(self, root: str, storage_options: dict[str, str] | None = None) -> None:
        if "://" not in root:
            root = os.path.abspath(os.path.expanduser(root))
            # A convenience for local roots; check() reports a root that cannot be made.
            with contextlib.suppress(OSError):
                os.makedirs(root, exist_ok=True)
        self.root = root.rstrip("/")
        self.storage_options = storage_options or None
        sweep_staging()

    @property
    def is_local(self) -> bool:
        return "://" not in self.root or self.root.startswith("file://")

    def uri(self, table: str) -> str:
        return f"{self.root}/{table}"

    def check(self) -> None:
        """Raise `StorageRootError` unless tables can be written under the root: a local root
        must be (or become) a writable folder; an object store must answer, with the given
        storage options, within `PROBE_TIMEOUT_SECONDS`. Both write and delete a probe file."""
        if self.is_local:
            self._check_folder()
        else:
            self._check_object_store()

    def _fail(self, problem: str, remedy: str) -> StorageRootError:
        return StorageRootError(
            f"{ROOT_VARIABLE} is '{_shown_root(self.root)}', which {problem}; {remedy}."
        )

    def _check_folder(self) -> None:
        folder = Path(urlsplit(self.root).path if "://" in self.root else self.root)
        change = f"point {ROOT_VARIABLE} at a folder this process can write"
        if folder.exists() and not folder.is_dir():
            raise self._fail("is a file, not a folder", f"remove the file or {change}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise self._fail(f"cannot be created ({reason})", change) from None
        if not folder.is_dir():
            raise self._fail("is not a folder", change)
        probe = folder / f".write-probe-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            with probe.open("xb") as handle:
                handle.write(b"probe")
            probe.unlink()
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise self._fail(
                f"this process cannot write to ({reason})",
                f"make the folder writable for this user or {change}",
            ) from None

    def _check_object_store(self) -> None:
        options = {
            k: v for k, v in (self.storage_options or {}).items() if k.lower() not in _PROBE_OPTIONS
        }
        options.update(_PROBE_OPTIONS)
        secret_values = sorted(
            (v for v in (self.storage_options or {}).values() if len(v) >= 4), key=len, reverse=True
        )
        outcome: list[BaseException | None] = []

        def probe() -> None:
            try:
                handler = DeltaStorageHandler(self.root, options)
                name = f".write-probe-{os.getpid()}-{secrets.token_hex(4)}"
                handler.get_file_info([name])
                # deltalake 1.6.6's pyarrow-facing stream hands pyarrow Buffers to its own
                # writer, which takes only bytes; its own stream takes bytes directly.
                raw = getattr(handler, "_handler", None)
                stream = (raw or handler).open_output_stream(name)
                stream.write(b"probe")
                stream.close()
                handler.delete_file(name)
                outcome.append(None)
            except BaseException as error:  # reported to the caller's thread below
                outcome.append(error)

        # The thread bounds the wait even if a client ignores its timeouts (a black-holed
        # endpoint); it is a daemon, so a stuck probe never keeps the process alive.
        thread = threading.Thread(target=probe, name="delta-root-probe", daemon=True)
        thread.start()
        thread.join(PROBE_TIMEOUT_SECONDS)
        remedy = (
            "check the URI, the endpoint and network access, and the credentials in the "
            "storage options"
        )
        if not outcome:
            raise self._fail(
                f"did not answer within {PROBE_TIMEOUT_SECONDS:g} s with the given storage options",
                remedy,
            )
        error = outcome[0]
        if error is not None:
            raise self._fail(
                "could not be reached or written with the given storage options "
                f"({_reason(error, secret_values)})",
                remedy,
            ) from None

    def exists(self, table: str) -> bool:
        return DeltaTable.is_deltatable(self.uri(table), storage_options=self.storage_options)

    def replace_days(
        self, table: str, first_day: date, end_day: date, base_schema: dict[str, pl.DataType]
    ) -> PartitionReplacement:
        return PartitionReplacement(
            self.uri(table), first_day, end_day, base_schema, self.storage_options
        )

    def commit_notes(self, table: str, key: str, value: str, limit: int = 500) -> list[dict]:
        """Recent commits whose note has `key == value` (newest first)."""
        return [entry for entry in self.history(table, limit) if entry.get(key) == value]

    # --- versions: for readers that compare a table's versions ----------------------------------

    def version(self, table: str) -> int:
        return versions.table_version(self.uri(table), self.storage_options)

    def history(self, table: str, limit: int = 500) -> list[dict]:
        """The latest `limit` commits (newest first) with their notes; none without a table."""
        if not self.exists(table):
            return []
        return versions.history(self.uri(table), limit, self.storage_options)

    def latest_note(self, table: str, key: str, limit: int = 50) -> str | None:
        """`key` of the newest of the latest `limit` commit notes that has it."""
        return next((e[key] for e in self.history(table, limit) if key in e), None)

    def files_at(self, table: str, version: int) -> set[str]:
        """Data files of `version` (raises `versions.VersionGone` when it cannot be read)."""
        return versions.files_at(self.uri(table), version, self.storage_options)

    def read_files(self, files: Iterable[str], columns: list[str]) -> pl.DataFrame | None:
        """`columns` of the rows in data `files`; None when a file is gone (vacuumed)."""
        return versions.read_files(files, columns)

    # --- small derived tables, written whole or by key -------------------------------------------

    def overwrite(
        self,
        table: str,
        rows: pl.DataFrame,
        note: dict[str, str] | None,
        partition_by: list[str] | None = None,
    ) -> None:
        """Make `table` exactly `rows`, in one commit carrying `note`, partitioned by
        `partition_by` when given (None: as it is, unpartitioned when new)."""
        with self._writing(table):  # opened afresh by URI, pinned or not
            tables.overwrite_table(self.uri(table), rows, note, self.storage_options, partition_by)

    def upsert(
        self,
        table: str,
        rows: pl.DataFrame,
        key: str,
        delete: Collection[str],
        note: dict[str, str] | None,
        partition_by: str | None = None,
    ) -> int:
        """Upsert `rows` by `key` and remove the rows whose `key` is in `delete`, in one commit
        carrying `note`; returns the rows removed. `partition_by`: the table's partition
        column, so that only the partitions touched are rewritten (see `tables.upsert_rows`)."""
        with self._writing(table) as opened:
            return tables.upsert_rows(
                self.uri(table), rows, key, delete, note, self.storage_options, partition_by, opened
            )

    @contextlib.contextmanager
    def _writing(self, table: str) -> Iterator[DeltaTable | None]:
        """Around a write to `table`: the table as this store read it, to write through and be
        checked against (None: open it afresh); a `PinnedStore` reads it again afterwards."""
        yield None

    def partition_columns(self, table: str) -> list[str]:
        """The columns `table` is partitioned by (none: unpartitioned)."""
        metadata = DeltaTable(self.uri(table), storage_options=self.storage_options).metadata()
        return list(metadata.partition_columns)

    def scan(self, table: str) -> pl.LazyFrame:
        """Lazy scan, so filters on `partition_date` prune files before anything is read."""
        return pl.scan_delta(self.uri(table), storage_options=self.storage_options)

    def pinned(self) -> PinnedStore:
        """This store with every table opened once and read at that version (see
        `PinnedStore`): for a reader that looks at many tables, several times, as of one
        moment."""
        return PinnedStore(self)

    def prefetch(self, tables: Iterable[str]) -> None:
        """Nothing: a `DeltaStore` opens a table on each read (a `PinnedStore` opens `tables`
        at once, side by side)."""


class PinnedStore(DeltaStore):
    """A `DeltaStore` that opens each table once, on first use, and reads it at that version
    from then on: one feedback refresh's view of its inputs (`DeltaStore.pinned()`).

    Why: opening a Delta table replays its log (5-7 ms for a raw table of 180 daily
    partitions), and a refresh asked each input for its version, then its files, then scanned
    it, each time opening it again: some 23 opens where 10 do. Pinned, the build also reads
    exactly the versions the refresh records in its commit note, not a sync's commit that
    landed in between. Writes unpin their table, so a read after a write sees it: `overwrite`
    opens the table afresh, as `DeltaStore` does; `upsert` writes through the pinned table, so
    its commit is checked against the version the refresh read (see `tables.upsert_rows`)."""

    def __init__(self, store: DeltaStore) -> None:
        # Not DeltaStore.__init__: the root exists and its staging was swept already.
        self.root = store.root
        self.storage_options = store.storage_options
        self._opened: dict[str, DeltaTable | None] = {}
        self._lock = threading.Lock()

    def pinned(self) -> PinnedStore:
        return self

    def _open(self, table: str) -> DeltaTable | None:
        if not super().exists(table):
            return None
        return DeltaTable(self.uri(table), storage_options=self.storage_options)

    def _table(self, table: str) -> DeltaTable | None:
        """`table` as first opened here; None when it did not exist then."""
        with self._lock:
            if table not in self._opened:
                self._opened[table] = self._open(table)
            return self._opened[table]

    def prefetch(self, tables: Iterable[str]) -> None:
        """Open those of `tables` not open yet, side by side: delta-rs replays each log
        without holding the GIL, and a refresh's ten tables opened in two thirds of the time
        they took one after another."""
        with self._lock:
            wanted = [t for t in dict.fromkeys(tables) if t not in self._opened]
        if not wanted:
            return
        with ThreadPoolExecutor(max_workers=min(len(wanted), PREFETCH_THREADS)) as pool:
            opened = dict(zip(wanted, pool.map(self._open, wanted), strict=True))
        with self._lock:
            for table, delta in opened.items():
                self._opened.setdefault(table, delta)

    def _unpin(self, table: str) -> None:
        with self._lock:
            self._opened.pop(table, None)

    def exists(self, table: str) -> bool:
        return self._table(table) is not None

    def version(self, table: str) -> int:
        opened = self._table(table)
        return super().version(table) if opened is None else opened.version()

    def history(self, table: str, limit: int = 500) -> list[dict]:
        """The latest commits, as `DeltaStore.history`: delta-rs lists the log's newest
        whichever version was loaded (and numbers them from the loaded one, so they are not
        filtered by version here). A refresh that reads a note newer than its pinned table
        diffs from the newer state, and its write is checked against the pinned version."""
        opened = self._table(table)
        if opened is None:
            return []
        return [
            {k: v for k, v in entry.items() if k != "version"} for entry in opened.history(limit)
        ]

    def files_at(self, table: str, version: int) -> set[str]:
        opened = self._table(table)
        if opened is not None and opened.version() == version:
            return set(opened.file_uris())
        return super().files_at(table, version)

    def partition_columns(self, table: str) -> list[str]:
        opened = self._table(table)
        if opened is None:
            return super().partition_columns(table)
        return list(opened.metadata().partition_columns)

    def scan(self, table: str) -> pl.LazyFrame:
        """Lazy scan of the pinned version (polars takes the table's storage options)."""
        opened = self._table(table)
        return super().scan(table) if opened is None else pl.scan_delta(opened)

    @contextlib.contextmanager
    def _writing(self, table: str) -> Iterator[DeltaTable | None]:
        """The pinned table, so that an upsert's commit is checked against the version this
        refresh read (see `tables.upsert_rows`' `table`); unpinned after the write, failed or
        not, so a later read sees it."""
        try:
            yield self._table(table)
        finally:
            self._unpin(table)
