"""A run killed with SIGKILL is found by the killed-run sensor, failed with a message that says
how to resume, and resumed from failure without fetching its finished window again."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from deltalake import DeltaTable

from kustomer_assets.assets.load import NOTE_WINDOW
from kustomer_assets.demo import INSTANCE_YAML
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import CONVERSATIONS
from kustomer_assets.org import KUSTOMER_POOL
from kustomer_assets.run_recovery import (
    HOST_TAG,
    ORG_TAG,
    PID_RUN_TAG,
    PID_START_TAG,
    PID_TAG,
    SENSOR_NAME,
    build_killed_run_sensor,
    fail_killed_runs,
    process_start,
    record_run_worker,
    resume_from_failure,
)
from kustomer_assets_tests.conftest import (
    TEST_KEY,
    assert_matches_truth,
    day_range,
    emulator_config,
    materialize_command,
    truth_in_window,
)

BIN = Path(sys.executable).parent


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def started_run(instance: dg.DagsterInstance, **tags: str) -> dg.DagsterRun:
    run = instance.add_run(
        dg.DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED)
    )
    worker = {HOST_TAG: socket.gethostname(), PID_RUN_TAG: run.run_id, **tags}
    instance.add_run_tags(run.run_id, worker)
    return run


def dead_pid() -> tuple[int, int | None]:
    """A pid (and its start time) that existed on this host and is gone, reaped."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    start = process_start(child.pid)
    child.kill()
    child.wait()
    return child.pid, start


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def test_sensor_fails_only_runs_whose_worker_on_this_host_is_gone(
    instance: dg.DagsterInstance,
) -> None:
    pid, start = dead_pid()
    dead = {PID_TAG: str(pid), PID_START_TAG: str(start)}
    alive = started_run(instance, **{PID_TAG: str(os.getpid())})
    elsewhere = started_run(instance, **dead, **{HOST_TAG: "another-host"})
    inherited = started_run(instance, **dead, **{PID_RUN_TAG: "the-parent-run"})
    reused = started_run(instance, **{PID_TAG: str(os.getpid()), PID_START_TAG: "1"})
    killed = started_run(instance, **dead)

    # Silent for less than the grace period: nothing is judged yet.
    assert fail_killed_runs(instance, grace_seconds=3600) == []
    assert status(instance, killed.run_id) == dg.DagsterRunStatus.STARTED

    with dg.build_sensor_context(instance=instance) as context:
        result = build_killed_run_sensor(grace_seconds=0)(context)
    assert isinstance(result, dg.SkipReason)
    failed = {killed.run_id, reused.run_id}
    assert all(run_id in (result.skip_message or "") for run_id in failed)
    for run in (alive, elsewhere, inherited):
        assert status(instance, run.run_id) == dg.DagsterRunStatus.STARTED
    for run_id in failed:
        assert status(instance, run_id) == dg.DagsterRunStatus.FAILURE
    run = instance.get_run_by_id(killed.run_id)
    assert run is not None
    # Not a step failure, so `retry_on_asset_or_op_failure: false` still retries it; but a run
    # without a code location (the CLI's) cannot be retried by the daemon, and says so.
    assert run.tags["dagster/failure_reason"] == "UNEXPECTED_TERMINATION"
    assert run.tags["dagster/will_retry"] == "false"
    # A second tick finds nothing more to do.
    assert fail_killed_runs(instance, grace_seconds=0) == []


def test_each_orgs_sensor_fails_only_its_own_killed_runs(instance: dg.DagsterInstance) -> None:
    """Two orgs in one code location each have a killed-run sensor: each judges the runs its
    assets tagged, and together they leave none behind."""
    pid, start = dead_pid()
    dead = {PID_TAG: str(pid), PID_START_TAG: str(start)}
    acme = started_run(instance, **dead, **{ORG_TAG: "acme"})
    globex = started_run(instance, **dead, **{ORG_TAG: "globex"})
    assert [w.run_id for w in fail_killed_runs(instance, grace_seconds=0, org_prefix="acme")] == [
        acme.run_id
    ]
    assert status(instance, globex.run_id) == dg.DagsterRunStatus.STARTED
    sensor = build_killed_run_sensor(
        grace_seconds=0, name="globex_kustomer_killed_runs", org_prefix="globex"
    )
    with dg.build_sensor_context(instance=instance) as context:
        sensor(context)
    assert status(instance, globex.run_id) == dg.DagsterRunStatus.FAILURE


def test_the_asset_records_its_worker_once_and_resume_refuses_a_live_run(
    instance: dg.DagsterInstance,
) -> None:
    @dg.asset
    def twice(context: dg.AssetExecutionContext) -> None:
        record_run_worker(context)
        instance.add_run_tags(context.run.run_id, {PID_TAG: "overwritten"})
        record_run_worker(context)  # a no-op: a run of many raw assets writes its tags once

    result = dg.materialize([twice], instance=instance)
    tags = instance.get_run_by_id(result.run_id).tags  # type: ignore[union-attr]
    assert tags[HOST_TAG] == socket.gethostname() and tags[PID_TAG] == "overwritten"
    assert tags[PID_RUN_TAG] == result.run_id and tags[PID_START_TAG].isdigit()

    alive = started_run(instance, **{PID_TAG: str(os.getpid())})
    with pytest.raises(ValueError, match="still running"):
        resume_from_failure(instance, alive.run_id)
    assert status(instance, alive.run_id) == dg.DagsterRunStatus.STARTED


def test_the_sensor_is_defined_running() -> None:
    from kustomer_assets.definitions import defs

    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 60


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _wait_for_first_window(table: Path, process: subprocess.Popen, timeout: float) -> None:
    def committed() -> bool:
        assert process.poll() is None, "the run ended before it could be killed"
        return (table / "_delta_log").exists() and any(
            NOTE_WINDOW in entry for entry in DeltaTable(str(table)).history(10)
        )

    _wait_for(committed, timeout)


@contextmanager
def searches_of(server: Emulator) -> Iterator[list[tuple[str, str]]]:
    """(query context, lowest `gte` bound) of every search the server answers meanwhile."""
    searched: list[tuple[str, str]] = []
    handle = server.handle

    def recording(method: str, target: str, headers: Any, body: bytes) -> Any:
        if method == "POST" and "/search" in target:
            query = json.loads(body)
            bounds = [
                value["gte"]
                for criterion in query.get("and", [])
                for value in criterion.values()
                if isinstance(value, dict) and "gte" in value
            ]
            searched.append((query.get("queryContext", ""), min(bounds, default="")))
        return handle(method, target, headers, body)

    server.handle = recording  # type: ignore[method-assign]
    try:
        yield searched
    finally:
        server.handle = handle  # type: ignore[method-assign]


def _failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.RUN_FAILURE, ascending=False
    ).records
    assert records
    return records[0].event_log_entry.dagster_event.message or ""


def test_killed_cli_run_is_failed_then_resumed_from_its_unfinished_window(
    tmp_path: Path,
) -> None:
    first, last = day_range(14)
    second_window = (date.fromisoformat(first) + timedelta(days=7)).isoformat()
    home, delta, staging = tmp_path / "home", tmp_path / "delta", tmp_path / "staging"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)  # the recommended config, pool limit 1
    with Emulator(emulator_config(days=16)) as server:
        env = {
            **os.environ,
            "KUSTOMER_BASE_URL": server.base_url,
            "KUSTOMER_API_KEY": TEST_KEY,
            "KUSTOMER_DELTA_ROOT": str(delta),
            "KUSTOMER_STAGING_DIR": str(staging),
            "DAGSTER_HOME": str(home),
            "KUSTOMER_ORG_REQUESTS_PER_MINUTE": "5000",
            "KUSTOMER_SEARCH_REQUESTS_PER_MINUTE": "5000",
        }
        # Every answer takes a second: the second window is still being read when we kill.
        server.set_faults(1.0, slow_seconds=1.0, slow=1)
        command = materialize_command(CONVERSATIONS.name, first, last)
        with (tmp_path / "run.log").open("w") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_first_window(delta / CONVERSATIONS.name, process, timeout=60)
            # The second window stages its batches in a folder named after the process.
            _wait_for(lambda: any(staging.glob(f"{process.pid}-*")), timeout=5)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        server.set_faults(0.0)

        instance = dg.DagsterInstance.from_config(str(home))
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.STARTED
        assert run.tags[PID_TAG] == str(process.pid)
        assert run.tags[HOST_TAG] == socket.gethostname()
        pool = instance.event_log_storage.get_concurrency_info(KUSTOMER_POOL)
        assert pool.active_run_ids == {run.run_id}, "the dead run should still hold the slot"

        with dg.build_sensor_context(instance=instance) as context:
            build_killed_run_sensor(grace_seconds=0)(context)
        assert status(instance, run.run_id) == dg.DagsterRunStatus.FAILURE
        message = _failure_message(instance, run.run_id)
        assert "run worker died" in message and f"process {process.pid}" in message
        assert "re-execute from failure: finished windows are kept" in message
        assert f"kustomer-assets resume {run.run_id}" in message
        pool = instance.event_log_storage.get_concurrency_info(KUSTOMER_POOL)
        assert not pool.active_run_ids, "the dead run's pool slot should be free"

        with searches_of(server) as searched:
            resume = subprocess.run(
                [str(BIN / "kustomer-assets"), "resume", run.run_id],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
        assert resume.returncode == 0, (resume.stdout + resume.stderr)[-3000:]
        # The finished window is not read again: no conversation search reaches back into it.
        starts = [start for context, start in searched if context == "conversation"]
        assert starts and min(starts) == f"{second_window}T00:00:00.000Z", searched
        table = pl.read_delta(str(delta / CONVERSATIONS.name))
        expected = CONVERSATIONS.mapper.frame(truth_in_window(server, CONVERSATIONS, first, last))
        assert_matches_truth(table, expected)

    (retry,) = [r for r in instance.get_runs() if r.run_id != run.run_id]
    assert retry.status == dg.DagsterRunStatus.SUCCESS
    assert retry.parent_run_id == run.run_id and retry.tags["dagster/root_run_id"] == run.run_id
    leftovers = [p.name for p in staging.iterdir() if p.name.startswith(f"{process.pid}-")]
    assert not leftovers, f"staging folders of the killed process remain: {leftovers}"
