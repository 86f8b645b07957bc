"""The lake writer among other processes: concurrent writers on one table, runs killed with
SIGKILL, and storage roots that cannot hold tables."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import stat
import tempfile
import time
from datetime import UTC, date, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake.exceptions import CommitFailedError

from kustomer_assets.lake import (
    STAGING_DIR_VARIABLE,
    DeltaStore,
    PartitionReplacement,
    StorageRootError,
    partitions,
    staging_root,
    sweep_staging,
)
from kustomer_assets.lake import staging as staging_module
from kustomer_assets.records import TIMESTAMP

BASE = {"id": pl.Utf8, "updated_at": TIMESTAMP, "partition_date": pl.Date, "v": pl.Int64}
SPAWN = mp.get_context("spawn")


def at(day: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, 12, minute, tzinfo=UTC)


def batch(rows: list[tuple[str, datetime, int]], score: list[Any] | None = None) -> pl.DataFrame:
    data: dict[str, Any] = {
        "id": [r[0] for r in rows],
        "updated_at": [r[1] for r in rows],
        "partition_date": [r[1].date() for r in rows],
        "v": [r[2] for r in rows],
    }
    schema: dict[str, pl.DataType] = dict(BASE)
    if score is not None:
        data["custom_score"] = score
        schema["custom_score"] = (
            pl.Float64 if any(isinstance(s, float) for s in score) else pl.Int64
        )
    return pl.DataFrame(data, schema=schema)


# --- concurrent writers ----------------------------------------------------------------------

WRITERS = 4
ROUNDS = 2
WINDOWS = {0: (1, 2), 1: (2, 3), 2: (3, 4), 3: (3, 4)}
"""Writers 0 and 1 replace their own day; 2 and 3 race on the same day."""
OUTSIDE = {0: "out-0", 1: "out-1", 2: "shared", 3: "shared"}
"""A row each merges into day 10 (outside every window); 2 and 3 merge the same version."""


def writer_rows(index: int, rnd: int) -> pl.DataFrame:
    first, _ = WINDOWS[index]
    value = 100 * rnd + index
    prefix = "c" if first == 3 else f"w{index}"
    rows = [(f"{prefix}-{k}", at(first, k), value) for k in range(3)]
    rows.append((OUTSIDE[index], at(10), value))
    score: list[Any] = [2.5] * 4 if index == 1 else [value] * 4
    return batch(rows, score)


def concurrent_writer(
    root: str, index: int, barrier: Barrier, results: Queue, staging: str, streamed: bool
) -> None:
    os.environ[STAGING_DIR_VARIABLE] = staging
    if streamed:  # the large-window path (`lake/day_files.py`)
        partitions.SORT_IN_MEMORY_ROWS = 0
    store = DeltaStore(root)
    first, end = WINDOWS[index]
    for rnd in range(ROUNDS):
        try:
            with store.replace_days("t", date(2026, 11, first), date(2026, 11, end), BASE) as r:
                r.add(writer_rows(index, rnd))
                barrier.wait(timeout=60)  # every writer commits at the same moment
                summary = r.commit()
            results.put((index, rnd, summary.commit_retries, None))
        except Exception as error:
            results.put((index, rnd, 0, f"{type(error).__name__}: {error}"))
            barrier.abort()
            return


def run_writers(
    root: Path, staging: Path, streamed: bool
) -> list[tuple[int, int, int, str | None]]:
    barrier = SPAWN.Barrier(WRITERS)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(
            target=concurrent_writer,
            args=(str(root), i, barrier, results, str(staging), streamed),
        )
        for i in range(WRITERS)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=90) for _ in range(WRITERS * ROUNDS)]
    except Exception:
        outcomes = []
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return outcomes


@pytest.mark.parametrize("streamed", [False, True], ids=["sorted in memory", "streamed by day"])
def test_concurrent_writers_all_succeed_with_exact_content(tmp_path: Path, streamed: bool) -> None:
    started = time.monotonic()
    outcomes = run_writers(tmp_path / "lake", tmp_path / "staging", streamed)
    errors = [o for o in outcomes if o[3] is not None]
    assert not errors, errors
    assert len(outcomes) == WRITERS * ROUNDS, "a writer hung or died"
    assert sum(o[2] for o in outcomes) > 0, "no commit met a conflict: the test proves nothing"

    table = pl.read_delta(str(tmp_path / "lake" / "t"))
    assert table.group_by("id", "updated_at").len()["len"].max() == 1  # no duplicates
    last = 100 * (ROUNDS - 1)
    by_id = {row["id"]: row for row in table.iter_rows(named=True)}
    for index in (0, 1):
        for k in range(3):
            assert by_id[f"w{index}-{k}"]["v"] == last + index
    same_window = {by_id[f"c-{k}"]["v"] for k in range(3)}
    assert same_window in ({last + 2}, {last + 3}), "the shared day mixes two writers"
    assert sorted(table.filter(pl.col("partition_date") == date(2026, 11, 10))["id"]) == [
        "out-0",
        "out-1",
        "shared",
    ]
    assert table.height == 3 + 3 + 3 + 3
    # the drifting score column: Int64 from three writers, Float64 from one; all values kept
    siblings = [c for c in table.columns if c.startswith("custom_score__")]
    for row in table.iter_rows(named=True):
        found = [row[c] for c in ["custom_score", *siblings] if row[c] is not None]
        expected = 2.5 if row["id"].startswith("w1-") or row["id"] == "out-1" else None
        assert len(found) == 1, row
        if expected is not None:
            assert found[0] == expected
    assert list((tmp_path / "staging").iterdir()) == []  # every staging folder removed
    assert time.monotonic() - started < 30


# --- crash hygiene ---------------------------------------------------------------------------


def stage_and_wait(lake: str, staging: str, folders: Queue) -> None:
    os.environ[STAGING_DIR_VARIABLE] = staging
    replacement = PartitionReplacement(f"{lake}/t", date(2026, 11, 1), date(2026, 11, 2), BASE)
    replacement.add(batch([("secret-message", at(1), 1)]))
    folders.put(str(replacement.staging_folder))
    time.sleep(120)


def start_stager(tmp_path: Path) -> tuple[mp.process.BaseProcess, Path]:
    folders = SPAWN.Queue()
    process = SPAWN.Process(
        target=stage_and_wait, args=(str(tmp_path / "lake"), str(tmp_path / "staging"), folders)
    )
    process.start()
    return process, Path(folders.get(timeout=60))


def test_a_killed_run_leaves_its_folder_and_the_next_run_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STAGING_DIR_VARIABLE, str(tmp_path / "staging"))
    killed, killed_folder = start_stager(tmp_path)
    alive, alive_folder = start_stager(tmp_path)
    try:
        assert killed_folder.parent == tmp_path / "staging"
        assert killed_folder.name.startswith(f"{killed.pid}-")
        assert stat.S_IMODE(killed_folder.stat().st_mode) == 0o700
        assert list(killed_folder.glob("*.parquet"))
        os.kill(killed.pid, signal.SIGKILL)
        killed.join(timeout=10)
        assert killed_folder.exists()  # SIGKILL runs no cleanup

        with PartitionReplacement(
            str(tmp_path / "lake" / "t"), date(2026, 11, 1), date(2026, 11, 2), BASE
        ) as mine:
            assert not killed_folder.exists()
            assert alive_folder.exists(), "a live process's folder was removed"
            assert mine.staging_folder.exists()
            DeltaStore(str(tmp_path / "lake"))  # a store sweeps too, and spares live folders
            assert mine.staging_folder.exists() and alive_folder.exists()
        assert not mine.staging_folder.exists()
    finally:
        for process in (killed, alive):
            if process.is_alive():
                process.kill()
            process.join(timeout=10)
    sweep_staging()
    assert not alive_folder.exists()


def test_staging_goes_under_one_parent_in_the_temp_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STAGING_DIR_VARIABLE, raising=False)
    assert staging_root() == Path(tempfile.gettempdir()) / "kustomer-assets-staging"


def test_a_reused_pid_or_another_host_is_judged_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STAGING_DIR_VARIABLE, str(tmp_path))
    host = staging_module._host_tag()
    start = staging_module._own_start()
    if start == 0:
        pytest.skip("no /proc start times on this platform")
    reused = tmp_path / f"{os.getpid()}-{start + 1}-{host}-abc"  # our pid, another process
    ours = tmp_path / f"{os.getpid()}-{start}-{host}-abc"
    other_host = tmp_path / f"{2**22 + 7}-1-{'0' * 8 if host != '0' * 8 else '1' * 8}-abc"
    for folder in (reused, ours, other_host):
        folder.mkdir()
    sweep_staging()
    assert not reused.exists()
    assert ours.exists()
    assert other_host.exists()


def test_legacy_folders_are_removed_once_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv(STAGING_DIR_VARIABLE, str(tmp_path / "staging"))
    idle, busy = tmp_path / "kustomer-stage-idle", tmp_path / "kustomer-stage-busy"
    for folder in (idle, busy):
        folder.mkdir()
        (folder / "batch-000000.parquet").write_bytes(b"rows")
    old = time.time() - staging_module.LEGACY_IDLE_SECONDS - 60
    for path in (idle / "batch-000000.parquet", idle):
        os.utime(path, (old, old))
    DeltaStore(str(tmp_path / "lake"))
    assert not idle.exists()
    assert busy.exists()


# --- storage root ----------------------------------------------------------------------------


def one_sentence(message: str) -> bool:
    return message.endswith(".") and ". " not in message and "\n" not in message


def test_a_file_as_root_does_not_fail_construction_but_fails_check(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.write_text("not a folder")
    store = DeltaStore(str(root))  # must not raise
    with pytest.raises(StorageRootError) as caught:
        store.check()
    message = str(caught.value)
    assert "KUSTOMER_DELTA_ROOT" in message and str(root) in message
    assert "is a file" in message
    assert one_sentence(message), message


def test_a_root_under_a_file_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    store = DeltaStore(str(tmp_path / "file" / "lake"))
    with pytest.raises(StorageRootError, match="cannot be created") as caught:
        store.check()
    assert one_sentence(str(caught.value))


def read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write to: chmod for a normal user; as root (which chmod
    does not stop), a kernel folder that refuses new files even to root."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    candidates = [folder, Path("/sys/kernel")]
    for candidate in candidates:
        try:
            (candidate / ".can-i-write").touch()
        except OSError:
            return candidate
        (candidate / ".can-i-write").unlink()
    pytest.skip("running as root with no read-only folder available: chmod does not stop root")


def test_a_read_only_root_fails_check(tmp_path: Path) -> None:
    folder = read_only_folder(tmp_path)
    try:
        with pytest.raises(StorageRootError, match="cannot write") as caught:
            DeltaStore(str(folder)).check()
        message = str(caught.value)
        assert "KUSTOMER_DELTA_ROOT" in message and str(folder) in message
        assert one_sentence(message), message
    finally:
        (tmp_path / "read-only").chmod(0o700)


def test_a_good_root_passes_and_keeps_no_probe(tmp_path: Path) -> None:
    DeltaStore(str(tmp_path / "new" / "lake")).check()
    assert list((tmp_path / "new" / "lake").iterdir()) == []


def test_an_unreachable_object_store_fails_fast_without_leaking_secrets() -> None:
    options = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEYID1234",
        "AWS_SECRET_ACCESS_KEY": "very-secret-access-key-value",
        "AWS_REGION": "us-east-1",
    }
    store = DeltaStore("s3://bucket/root", options)  # must not raise or connect
    started = time.monotonic()
    with pytest.raises(StorageRootError) as caught:
        store.check()
    assert time.monotonic() - started < 8
    message = str(caught.value)
    assert "KUSTOMER_DELTA_ROOT" in message and "s3://bucket/root" in message
    assert one_sentence(message), message
    for secret in ("AKIAEXAMPLEKEYID1234", "very-secret-access-key-value"):
        assert secret not in message
        assert secret not in repr(caught.value.__cause__ or "")


def test_an_endpoint_that_never_answers_does_not_hang_the_check() -> None:
    silent = socket.socket()  # accepts connections (the kernel does) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        options = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEYID1234",
            "AWS_SECRET_ACCESS_KEY": "very-secret-access-key-value",
            "AWS_REGION": "us-east-1",
            "timeout": "600s",  # the user's own timeouts do not stretch the check
        }
        started = time.monotonic()
        with pytest.raises(StorageRootError) as caught:
            DeltaStore("s3://bucket/root", options).check()
        assert time.monotonic() - started < 8
        assert one_sentence(str(caught.value)), caught.value
    finally:
        silent.close()


def test_credentials_in_the_root_uri_are_not_shown() -> None:
    store = DeltaStore(
        "s3://user:pa55word@bucket/root?token=abc",
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ALLOW_HTTP": "true"},
    )
    with pytest.raises(StorageRootError) as caught:
        store.check()
    assert "pa55word" not in str(caught.value) and "token=abc" not in str(caught.value)


# --- retry policy ----------------------------------------------------------------------------


def failing_writes(monkeypatch: pytest.MonkeyPatch, errors: list[Exception]) -> list[int]:
    """Make the first writes raise `errors` in turn, then write for real; returns a call log."""
    calls: list[int] = []
    real = partitions.write_deltalake

    def write(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        real(*args, **kwargs)

    monkeypatch.setattr(partitions, "write_deltalake", write)
    monkeypatch.setattr(partitions, "_BACKOFF_FIRST_SECONDS", 0.001)
    return calls


def test_conflicts_are_retried_and_other_errors_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conflicts: list[Exception] = [
        CommitFailedError("Commit failed: a concurrent transaction deleted the same data"),
        OSError("Generic error: version 3 already exists"),
    ]
    calls = failing_writes(monkeypatch, conflicts)
    with PartitionReplacement(str(tmp_path / "t"), date(2026, 11, 1), date(2026, 11, 2), BASE) as r:
        r.add(batch([("a", at(1), 1)]))
        assert r.commit().commit_retries == 2
    assert len(calls) == 3

    calls = failing_writes(monkeypatch, [ValueError("schema is broken")])
    with (
        pytest.raises(ValueError),
        PartitionReplacement(str(tmp_path / "t"), date(2026, 11, 1), date(2026, 11, 2), BASE) as r,
    ):
        r.commit()
    assert len(calls) == 1


def test_retries_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endless = [CommitFailedError("concurrent transaction") for _ in range(100)]
    calls = failing_writes(monkeypatch, endless)
    with (
        pytest.raises(CommitFailedError),
        PartitionReplacement(str(tmp_path / "t"), date(2026, 11, 1), date(2026, 11, 2), BASE) as r,
    ):
        r.commit()
    assert len(calls) == partitions.COMMIT_ATTEMPTS
