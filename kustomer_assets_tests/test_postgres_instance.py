"""README's production instance for real: `deploy/dagster.yaml` on a throwaway Postgres cluster.

A backfill against the emulator records its runs, materializations and pool slots in Postgres;
three runs launched the way the UI launches them (GraphQL `launchPipelineExecution`) wait in the
run queue, and the queued-run coordinator (the daemon's own iteration, run here in-process)
with the `kustomer_api` pool at 1 lets only one of them call Kustomer at a time.

The cluster is made with the server binaries from /usr/lib/postgresql/*/bin (Debian's
`postgresql` package, which `.ci/run` installs when missing) in a temporary folder on a free
loopback port. Postgres refuses to run as root, and tests run as root here: the cluster is then
created and run as the `postgres` OS user (`runuser`), which that package creates.
"""

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from kustomer_assets.assets.raw import build_entity_asset
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import CONVERSATIONS, CUSTOMERS
from kustomer_assets.org import KUSTOMER_POOL
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

REPO = Path(__file__).resolve().parents[1]
INSTANCE_YAML = REPO / "deploy" / "dagster.yaml"
PASSWORD = "pg-pass-8fQ2-SHOULD-NOT-LEAK"


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    db: str


def _server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major_version)
    return Path(found[-1]).parent if found else None


def _major_version(path: str) -> int:
    part = path.split("/")[4]
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A new cluster with a `dagster` database and a password-protected `dagster` role."""
    binaries = _server_binaries()
    if binaries is None:
        pytest.skip(
            "Postgres server binaries are absent (/usr/lib/postgresql/*/bin/initdb): "
            "apt-get install -y postgresql (bash .ci/run does when they are missing)"
        )
    prefix: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        prefix = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="kustomer-pg-"))  # not under pytest's 0700 tmp
    data, password_file, port = folder / "data", folder / "password", _free_port()
    password_file.write_text(PASSWORD)
    if owner is not None:
        for path in (folder, password_file):
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def run(*command: str) -> None:
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    started = False
    try:
        run(
            str(binaries / "initdb"),
            *("-D", str(data), "-U", "dagster", f"--pwfile={password_file}"),
            *("-A", "scram-sha-256", "-E", "UTF8", "--no-sync"),
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        run(
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "log"),
            "-w",
            "-o",
            options,
            "start",
        )
        started = True
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=port, user="dagster", password=PASSWORD, dbname="postgres"
        )
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE dagster")
        connection.close()
        yield Postgres("127.0.0.1", port, "dagster", PASSWORD, "dagster")
    finally:
        if started:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def instance(
    postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """README's `deploy/dagster.yaml` in a fresh DAGSTER_HOME, on a database of its own."""
    import psycopg2

    connection = psycopg2.connect(
        host=postgres.host,
        port=postgres.port,
        user=postgres.user,
        password=PASSWORD,
        dbname="postgres",
    )
    connection.autocommit = True
    database = f"dagster_{os.getpid()}_{time.monotonic_ns()}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
    connection.close()
    home = tmp_path / "dagster_home"
    home.mkdir()
    # The documented file, plus one setting for tests only: leaving a workspace waits for the
    # code server it started, so none outlives the test (and its database).
    (home / "dagster.yaml").write_text(
        INSTANCE_YAML.read_text()
        + "\ncode_servers:\n  wait_for_local_processes_on_shutdown: true\n"
    )
    for name, value in {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USERNAME": postgres.user,
        "DAGSTER_PG_PASSWORD": PASSWORD,
        "DAGSTER_PG_DB": database,
    }.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as pg_instance:
        yield pg_instance


def test_the_documented_instance_is_postgres_with_a_queue_a_pool_and_monitoring(
    instance: dg.DagsterInstance,
) -> None:
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    assert instance.run_monitoring_enabled
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
    assert instance.global_op_concurrency_default_limit == 1
    assert PASSWORD not in INSTANCE_YAML.read_text()


def test_a_backfill_on_the_postgres_instance(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "delta")
    assets = [build_entity_asset(spec) for spec in (CONVERSATIONS, CUSTOMERS)]
    with Emulator(emulator_config(days=4)) as server:
        first, last = day_range(4)
        result = materialize_range(
            assets, first, last, resources(server.base_url, lake), instance=instance
        )
        assert result.success
        for spec in (CONVERSATIONS, CUSTOMERS):
            expected = spec.mapper.frame(truth_in_window(server, spec, first, last))
            assert_matches_truth(lake.table(spec.name), expected)
    record = instance.get_run_record_by_id(result.run_id)
    assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    partitions = instance.get_materialized_partitions(dg.AssetKey("conversations"))
    assert partitions == {day.isoformat()[:10] for day in _days(first, last)}
    info = instance.event_log_storage.get_concurrency_info(KUSTOMER_POOL)
    assert info.slot_count == 1 and not info.active_slot_count  # the steps took and gave back


def _days(first: str, last: str) -> list[datetime]:
    start, end = datetime.fromisoformat(first), datetime.fromisoformat(last)
    return [datetime.fromordinal(o) for o in range(start.toordinal(), end.toordinal() + 1)]


def test_queued_runs_call_kustomer_one_at_a_time(
    instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )
    from dagster_graphql.test.utils import materialize_assets

    lake = Lake(tmp_path / "delta")
    with Emulator(emulator_config(days=4)) as server:
        # What the code server and its run workers (subprocesses) read: README's variables.
        for name, value in {
            "KUSTOMER_BASE_URL": server.base_url,
            "KUSTOMER_API_KEY": TEST_KEY,
            "KUSTOMER_DELTA_ROOT": str(lake.root),
            "KUSTOMER_ORG_REQUESTS_PER_MINUTE": "5000",
            "KUSTOMER_SEARCH_REQUESTS_PER_MINUTE": "5000",
        }.items():
            monkeypatch.setenv(name, value)
        first, last = day_range(3)
        days = [day.date().isoformat() for day in _days(first, last)]
        # README's setup step, `dagster instance concurrency set kustomer_api 1`. Without it the
        # pool only appears (at `default_limit`) once the queue has seen it, so the very first
        # dequeue of a new instance lets every queued run start; their steps would still wait
        # for the slot one by one (granularity `op`), but in started runs.
        instance.event_log_storage.set_concurrency_slots(KUSTOMER_POOL, 1)
        target = WorkspaceFileTarget(paths=[str(REPO / "workspace.yaml")])
        with WorkspaceProcessContext(instance, target, version="") as process:
            launched = materialize_assets(
                process.create_request_context(), [dg.AssetKey("conversations")], days
            )
            run_ids = [r.data["launchPipelineExecution"]["run"]["runId"] for r in launched]
            assert len(run_ids) == 3
            assert _statuses(instance, run_ids) == [dg.DagsterRunStatus.QUEUED] * 3

            daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
            list(daemon.run_iteration(process))
            statuses = _statuses(instance, run_ids)
            # The pool has one slot: the first dequeue starts one run, the others wait.
            assert statuses.count(dg.DagsterRunStatus.QUEUED) == 2, statuses

            deadline = time.monotonic() + 150
            while not all(s in _DONE for s in _statuses(instance, run_ids)):
                assert time.monotonic() < deadline, _statuses(instance, run_ids)
                time.sleep(1)
                list(daemon.run_iteration(process))
        assert _statuses(instance, run_ids) == [dg.DagsterRunStatus.SUCCESS] * 3
        expected = CONVERSATIONS.mapper.frame(truth_in_window(server, CONVERSATIONS, first, last))
        assert_matches_truth(lake.table("conversations"), expected)

    # The Kustomer-calling steps of the three runs never overlapped.
    spans = sorted(_step_span(instance, run_id, "conversations") for run_id in run_ids)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, spans


_DONE = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _statuses(instance: dg.DagsterInstance, run_ids: list[str]) -> list[dg.DagsterRunStatus]:
    return [instance.get_run_by_id(run_id).status for run_id in run_ids]  # type: ignore[union-attr]


def _step_span(instance: dg.DagsterInstance, run_id: str, step: str) -> tuple[float, float]:
    """When the step started (after its pool claim) and when it finished, in the event log."""
    events = [e for e in instance.all_logs(run_id) if e.step_key == step and e.is_dagster_event]
    started = [e.timestamp for e in events if e.dagster_event.event_type_value == "STEP_START"]
    ended = [e.timestamp for e in events if e.dagster_event.event_type_value == "STEP_SUCCESS"]
    assert started and ended, (run_id, [e.dagster_event.event_type_value for e in events])
    return started[0], ended[-1]
