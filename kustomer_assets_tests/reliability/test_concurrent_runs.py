"""Four `dagster asset materialize` processes over overlapping ranges of one table at once.

Why: a sensor run beside a backfill, or two people launching backfills, write the same days of
the same Delta table at the same moment. Delta's optimistic concurrency rejects all but one
commit; the others must re-read and retry, and the table must end up as if the runs had gone
one after the other: every record of the union of the ranges once, at its version.

Process start-up alone would spread the four commits over seconds, so the emulator holds
each run's last request -- the count that proves its window complete, right before the commit
-- until all four runs have sent theirs: the four commits then race for real.
"""

from __future__ import annotations

import os
import subprocess
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import polars as pl

from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import CONVERSATIONS
from kustomer_assets.lake import DeltaStore
from kustomer_assets.records import PARTITION_COLUMN
from kustomer_assets.run_report import run_value
from kustomer_assets_tests.conftest import (
    TEST_KEY,
    assert_matches_truth,
    emulator_config,
    materialize_command,
)
from kustomer_assets_tests.test_end_to_end import expected_table

RANGES_DAYS_AGO = [(5, 2), (3, 0), (4, 1), (5, 0)]
"""(first, last) days before today of each process: every day is in two or more ranges."""

GATE_SECONDS = 60.0
"""Longest a request waits for the other processes (bounded: a process that never gets there
fails the test by the assertion on the rendezvous, not by a hang)."""


class Rendezvous:
    """Holds requests until `parties` of them wait at once, then lets every one through.

    Each CLI process sends one request at a time, so `parties` requests waiting together come
    from `parties` different processes."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.waiting = 0
        self.opened = False
        self._cond = threading.Condition()

    def wait(self) -> None:
        with self._cond:
            if self.opened:
                return
            self.waiting += 1
            if self.waiting >= self.parties:
                self.opened = True
                self._cond.notify_all()
                return
            self._cond.wait_for(lambda: self.opened, timeout=GATE_SECONDS)


def _hold_counts(server: Emulator, gate: Rendezvous) -> None:
    """Put the rendezvous in front of window counts (search pages of size 1; a quiet window's
    last request), on this emulator instance only."""
    handle = server.handle

    def gated(method: str, target: str, headers: Any, body: bytes) -> Any:
        query = parse_qs(urlsplit(target).query)
        if urlsplit(target).path == "/v1/customers/search" and query.get("pageSize") == ["1"]:
            gate.wait()
        return handle(method, target, headers, body)

    server.handle = gated  # type: ignore[method-assign]


def _day(days_ago: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=days_ago)).isoformat()


def _materialization_metadata(home: Path) -> dict[str, Any]:
    """The conversations materialization's metadata from a finished process's instance."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(dg.AssetKey("conversations"), limit=1).records
        assert records, f"no materialization recorded in {home}"
        materialization = records[0].asset_materialization
        assert materialization is not None
        return {key: value.value for key, value in materialization.metadata.items()}


def test_four_overlapping_backfills_at_once_equal_the_truth(tmp_path: Path) -> None:
    delta = tmp_path / "delta"
    # Scale 1 over 10 days spreads conversations over every day of the ranges (at 0.5 the
    # emulator's one bulk update puts nearly all of them on today).
    with Emulator(emulator_config(days=10, scale=1.0)) as server:
        gate = Rendezvous(len(RANGES_DAYS_AGO))
        _hold_counts(server, gate)
        processes, homes = [], []
        for number, (first_ago, last_ago) in enumerate(RANGES_DAYS_AGO):
            home = tmp_path / f"home-{number}"
            home.mkdir()
            homes.append(home)
            env = {
                **os.environ,
                "KUSTOMER_BASE_URL": server.base_url,
                "KUSTOMER_API_KEY": TEST_KEY,
                "KUSTOMER_DELTA_ROOT": str(delta),
                "DAGSTER_HOME": str(home),
                "KUSTOMER_ORG_REQUESTS_PER_MINUTE": "5000",
                "KUSTOMER_SEARCH_REQUESTS_PER_MINUTE": "5000",
            }
            command = materialize_command("conversations", _day(first_ago), _day(last_ago))
            processes.append(
                subprocess.Popen(
                    command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
            )
        outputs = []
        try:
            for process in processes:
                outputs.append(process.communicate(timeout=150)[0])
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        assert gate.opened, "the four runs never had their last request in flight together"
        for process, output in zip(processes, outputs, strict=True):
            assert process.returncode == 0, output[-3000:]
            assert TEST_KEY not in output
        first = _day(max(first for first, _ in RANGES_DAYS_AGO))
        last = _day(min(last for _, last in RANGES_DAYS_AGO))
        table = pl.read_delta(str(delta / "conversations"))
        expected = expected_table(server, CONVERSATIONS, first, last)
        assert expected.height > 100
        assert_matches_truth(table, expected)
    # One row per record version: the union of the ranges, not a row per run that wrote it.
    assert table.height == expected.height
    per_day = table.group_by("partition_date").len().sort("partition_date")
    want = expected.group_by("partition_date").len().sort("partition_date")
    assert per_day.equals(want)
    metadata = [_materialization_metadata(home) for home in homes]
    assert all(run_value(m, "rows_written") > 0 for m in metadata), metadata
    assert all(run_value(m, "windows") == 1 for m in metadata)


RACE_SCHEMA = {"id": pl.Utf8, "updated_at": pl.Datetime("us", "UTC"), PARTITION_COLUMN: pl.Date}
RACE_TRIALS = 20
"""Before the fix about 4 trials in 10 doubled rows; 20 trials miss it with odds of ~1e-4."""


def _rows(first: int, last: int) -> pl.DataFrame:
    """Five versions per day of November 2026, the same ones whichever writer stages them."""
    return pl.DataFrame(
        [
            {
                "id": f"{day:02d}-{n}",
                "updated_at": datetime(2026, 11, day, 1, n, tzinfo=UTC),
                PARTITION_COLUMN: date(2026, 11, day),
            }
            for day in range(first, last + 1)
            for n in range(5)
        ],
        schema=RACE_SCHEMA,
    )


def test_writers_racing_to_create_the_table_double_no_row(tmp_path: Path) -> None:
    """The failure the process test above found, at the writer, in threads: four windows
    over overlapping days committed at once into a table that does not exist yet. The
    loser of the race to create the table used to be appended blindly (delta-rs has no
    snapshot to check its overwrite against), doubling the overlapping days."""
    ranges = [(1, 4), (3, 6), (2, 5), (1, 6)]
    for trial in range(RACE_TRIALS):
        store = DeltaStore(str(tmp_path / f"trial-{trial}"))
        errors = _race(store, ranges)
        assert not errors, errors
        table = store.scan("t").collect().sort("id")
        assert table.equals(_rows(1, 6).sort("id")), f"trial {trial}: {table.height} rows"


def _race(store: DeltaStore, ranges: list[tuple[int, int]]) -> list[BaseException]:
    """Commit one window per range, all at once (a barrier between staging and commit)."""
    barrier = threading.Barrier(len(ranges), timeout=30)
    errors: list[BaseException] = []

    def write(first: int, last: int) -> None:
        try:
            start, end = date(2026, 11, first), date(2026, 11, last + 1)
            with store.replace_days("t", start, end, RACE_SCHEMA) as replacement:
                replacement.add(_rows(first, last))
                barrier.wait()
                replacement.commit()
        except BaseException as error:  # returned to the test, which asserts there is none
            errors.append(error)

    threads = [threading.Thread(target=write, args=days) for days in ranges]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors
