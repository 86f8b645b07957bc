"""An `s3://` root for real: moto's S3 server on loopback, configured only by environment variables.

What README's "Object storage" promises, end to end: `lake_from_env` turns the AWS_* variables into
storage options (secrets as `EnvVar`, so no run config, log or UI shows them), `DeltaStore.check`
passes, a backfill of conversations, customers and messages lands in `s3://bucket/lake` equal to
the emulator's truth, a rerun leaves the tables as they were, feedback builds from them, the three
readers agree, and maintenance compacts and vacuums on the bucket. A second test pins down why
concurrent writers are safe on S3 without `AWS_S3_ALLOW_UNSAFE_RENAME` or a DynamoDB lock:
deltalake commits each log entry with a conditional PUT (`If-None-Match: *`) and retries on 412.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import boto3
import dagster as dg
import moto.s3.responses as moto_s3
import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake
from moto.server import ThreadedMotoServer

from kustomer_assets.assets.feedback import feedback
from kustomer_assets.assets.raw import build_entity_asset
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import CONVERSATIONS, CUSTOMERS, MESSAGES
from kustomer_assets.lake import partitions
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets.maintenance import kustomer_lake_maintenance, list_tables
from kustomer_assets.resources import STORAGE_VARIABLES, lake_from_env, storage_options_from_env
from kustomer_assets_tests.conftest import (
    TEST_KEY,
    Lake,
    assert_matches_truth,
    day_range,
    emulator_config,
    materialize_range,
    resources,
    truth_in_window,
)
from kustomer_assets_tests.test_maintenance import canonical
from kustomer_assets_tests.test_readers import assert_readers_agree

SPECS = (CONVERSATIONS, CUSTOMERS, MESSAGES)
DAYS = 4
BUCKET = "bucket"
ROOT = f"s3://{BUCKET}/lake"
SECRET = "moto-secret-ZQ93-SHOULD-NOT-LEAK"
"""Distinctive, so every log, event and run config can be searched for it."""


@dataclass
class S3Server:
    endpoint: str
    env: dict[str, str]


MOTO_SERVER = """
import sys, time
from moto.server import ThreadedMotoServer
ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False).start()
while True:
    time.sleep(3600)
"""
"""moto in a process of its own. In this process it would share the GIL with delta-rs, whose
object-store output stream (the root check's probe) blocks without releasing it: the server
thread never answers and the probe times out, which no real object store would do."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "moto-access-key",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }


def _create_bucket(server: S3Server) -> None:
    boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SECRET,
        region_name=server.env["AWS_REGION"],
    ).create_bucket(Bucket=BUCKET)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """moto's S3 server in a subprocess on a free loopback port, with one empty bucket."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        server = S3Server(endpoint, _server_env(endpoint))
        _create_bucket(server)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


@pytest.fixture
def s3_in_process() -> Iterator[S3Server]:
    """moto in this process, for a test that patches its request handler."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    server = S3Server(endpoint, _server_env(endpoint))
    try:
        _create_bucket(server)
        yield server
    finally:
        moto.stop()


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KUSTOMER_DELTA_ROOT", ROOT)
    return s3


def test_root_check_passes_on_an_s3_root(s3_env: S3Server) -> None:
    lake_from_env().store().check()


def _everything_recorded(instance: dg.DagsterInstance) -> str:
    """Every run's config, tags and every event, as text, to search for secrets."""
    parts = []
    for run in instance.get_runs():
        parts.append(repr(run.run_config))
        parts.append(repr(run.tags))
        parts.extend(repr(event) for event in instance.all_logs(run.run_id))
    return "\n".join(parts)


def test_backfill_rerun_feedback_readers_and_maintenance_on_s3(
    s3_env: S3Server,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    lake = lake_from_env()
    assert lake.root == ROOT
    # Secrets reach the resource config as variable names only (what the UI shows).
    assert isinstance(lake.storage_options["AWS_SECRET_ACCESS_KEY"], dg.EnvVar)
    assert isinstance(lake.storage_options["AWS_ACCESS_KEY_ID"], dg.EnvVar)
    assert lake.storage_options["AWS_ENDPOINT_URL"] == s3_env.endpoint
    assert SECRET not in repr(lake)
    store = lake.store()
    assert store.storage_options and store.storage_options["AWS_SECRET_ACCESS_KEY"] == SECRET
    store.check()  # writes and deletes a probe object on the bucket

    assets = [build_entity_asset(spec) for spec in SPECS]
    with Emulator(emulator_config(days=DAYS)) as server, dg.instance_for_test() as instance:
        first, last = day_range(DAYS + 1)
        res = {**resources(server.base_url, Lake(tmp_path / "unused")), "lake": lake}
        assert materialize_range(assets, first, last, res, instance=instance).success
        options = store.storage_options

        def table(name: str) -> pl.DataFrame:
            return pl.read_delta(store.uri(name), storage_options=options)

        for spec in SPECS:
            expected = spec.mapper.frame(truth_in_window(server, spec, first, last))
            assert expected.height > 10, spec.name
            assert_matches_truth(table(spec.name), expected)
        before = {spec.name: canonical(table(spec.name)) for spec in SPECS}
        versions = {
            spec.name: DeltaTable(store.uri(spec.name), storage_options=options).version()
            for spec in SPECS
        }

        # A rerun replaces the same days with the same rows: idempotent on S3 too.
        assert materialize_range(assets, first, last, res, instance=instance).success
        for spec in SPECS:
            assert canonical(table(spec.name)).equals(before[spec.name]), spec.name
            after = DeltaTable(store.uri(spec.name), storage_options=options).version()
            assert after > versions[spec.name], spec.name

        assert dg.materialize([feedback], resources={"lake": lake}, instance=instance).success
        live = {
            c["id"]
            for c in server.truth("conversation", include_deleted=True)
            if not c["attributes"].get("deleted")
        }
        in_window = {r["id"] for r in truth_in_window(server, CONVERSATIONS, first, last)}
        assert set(table("feedback")["conversation_id"]) == live & in_window

        tables = list_tables(store)
        assert tables == sorted([*(s.name for s in SPECS), "feedback"])
        for name in tables:
            assert assert_readers_agree(store.uri(name), options) > 0

        contents = {name: canonical(table(name)) for name in tables}
        maintained = kustomer_lake_maintenance.execute_in_process(
            resources={"lake": lake},
            run_config={
                "ops": {
                    "compact_and_vacuum": {
                        "config": {"retention_hours": 0, "force_retention": True}
                    }
                }
            },
            instance=instance,
        )
        assert maintained.success
        for name in tables:
            assert canonical(table(name)).equals(contents[name]), name

        recorded = _everything_recorded(instance)
    assert SECRET not in recorded
    assert SECRET not in caplog.text
    assert TEST_KEY not in recorded


def test_commits_are_conditional_puts_so_concurrent_writers_are_safe(
    s3_in_process: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every log entry is written with `If-None-Match: *`; when another writer took the
    version first (the server answers 412), deltalake commits the next version instead of
    overwriting. Both with and without AWS_S3_ALLOW_UNSAFE_RENAME: in deltalake 1.6.6 that
    option no longer changes how commits are written."""
    log_puts: list[tuple[str, str | None]] = []
    race: dict[str, bytes] = {}
    original: Callable = moto_s3.S3Response.put_object

    def put_object(self: moto_s3.S3Response) -> object:
        key = self.parse_key_name()
        if "/_delta_log/" in key and key.endswith(".json"):
            log_puts.append((key, self.headers.get("If-None-Match")))
            if key in race:  # another writer commits this version just before us
                self.backend.put_object(self.bucket_name, key, race.pop(key))
        return original(self)

    monkeypatch.setattr(moto_s3.S3Response, "put_object", put_object)
    s3 = s3_in_process
    for name, extra in (("plain", {}), ("unsafe", {"AWS_S3_ALLOW_UNSAFE_RENAME": "true"})):
        options = {**s3.env, **extra}
        uri = f"s3://{BUCKET}/race-{name}"
        write_deltalake(uri, pl.DataFrame({"x": [0]}).to_arrow(), storage_options=options)
        write_deltalake(
            uri, pl.DataFrame({"x": [1]}).to_arrow(), mode="append", storage_options=options
        )
        log = f"race-{name}/_delta_log/"
        rival = (
            boto3.client(
                "s3",
                endpoint_url=s3.endpoint,
                aws_access_key_id=s3.env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=SECRET,
                region_name=s3.env["AWS_REGION"],
            )
            .get_object(Bucket=BUCKET, Key=f"{log}{1:020d}.json")["Body"]
            .read()
        )
        race[f"{log}{2:020d}.json"] = rival  # the rival's commit 2 re-adds commit 1's file
        write_deltalake(
            uri, pl.DataFrame({"x": [2]}).to_arrow(), mode="append", storage_options=options
        )
        table = DeltaTable(uri, storage_options=options)
        assert table.version() == 3, name  # ours became version 3; the rival's 2 was kept
        assert sorted(table.to_pyarrow_table().column("x").to_pylist()) == [0, 1, 2], name
    assert log_puts and all(header == "*" for _, header in log_puts), log_puts


def test_storage_options_come_from_the_set_variables_of_the_roots_store_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for names in STORAGE_VARIABLES.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "azure-key-SHOULD-NOT-LEAK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)  # another store's: not passed
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT", "/etc/keys/gcs.json")

    azure = storage_options_from_env("az://container/lake")
    assert azure == {
        "AZURE_STORAGE_ACCOUNT_NAME": "acct",
        "AZURE_STORAGE_ACCOUNT_KEY": "AZURE_STORAGE_ACCOUNT_KEY",
    }
    assert isinstance(azure["AZURE_STORAGE_ACCOUNT_KEY"], dg.EnvVar)
    assert storage_options_from_env("abfss://container@acct.dfs.core.windows.net/lake") == azure
    assert storage_options_from_env("gs://bucket/lake") == {
        "GOOGLE_SERVICE_ACCOUNT": "/etc/keys/gcs.json"
    }
    assert storage_options_from_env("/data/kustomer") == {}
    assert storage_options_from_env("data/delta") == {}

    resource = DeltaLakeResource(root="az://container/lake", storage_options=azure)
    assert "azure-key-SHOULD-NOT-LEAK" not in repr(resource)
    # Outside a run the resource reads the variable itself, at use time.
    assert resource.resolved_storage_options()["AZURE_STORAGE_ACCOUNT_KEY"] == (
        "azure-key-SHOULD-NOT-LEAK"
    )


def test_a_large_window_streamed_day_by_day_on_s3(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The large-window writer (`lake/day_files.py`) writes its files through the table's own
    object store and commits them in one transaction: a rerun replaces them, days outside the
    window stay, and no file of a replaced version is still referenced."""
    monkeypatch.setattr(partitions, "SORT_IN_MEMORY_ROWS", 0)
    store = lake_from_env().store()
    schema = {"id": pl.Utf8, "updated_at": pl.Datetime("us", "UTC"), "partition_date": pl.Date}

    def window(first: int, end: int, value: str) -> None:
        days = [date(2026, 11, d) for d in range(first, end)]
        frame = pl.DataFrame(
            {
                "id": [f"c{d.day}-{k}" for d in days for k in range(3)],
                "updated_at": [
                    datetime(2026, 11, d.day, 12, k, tzinfo=UTC) for d in days for k in range(3)
                ],
                "partition_date": [d for d in days for _ in range(3)],
                "custom_note_str": [value] * (3 * len(days)),
            },
            schema={**schema, "custom_note_str": pl.Utf8},
        )
        with store.replace_days("t", days[0], days[-1] + timedelta(days=1), schema) as replacement:
            replacement.add(frame)
            replacement.commit()

    window(1, 4, "first")
    window(3, 5, "rerun")
    table = store.scan("t").collect().sort("id")
    assert table.height == 3 * 4
    assert dict(
        table.group_by("partition_date").agg(pl.col("custom_note_str").first()).iter_rows()
    ) == {
        date(2026, 11, 1): "first",
        date(2026, 11, 2): "first",
        date(2026, 11, 3): "rerun",
        date(2026, 11, 4): "rerun",
    }
    files = DeltaTable(store.uri("t"), storage_options=store.storage_options).file_uris()
    days = sorted(f.split("/")[-2] for f in files)
    assert days == [f"partition_date=2026-11-0{d}" for d in range(1, 5)]  # one file per day
    assert all(f.startswith(f"s3://{BUCKET}/lake/t/") for f in files)
