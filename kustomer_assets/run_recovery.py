"""Runs whose worker process was killed (SIGKILL: the OOM killer, `kill -9`, a restart): find
them, fail them, resume them.

Why this module exists: a run worker killed with SIGKILL writes no failure event, so the run
stays STARTED for good: "re-execute from failure" is refused (the run has not failed) and the
`kustomer_api` pool slot its step claimed is never released, so every later run queues behind
a dead one. Dagster 1.13 fails such a run only when the code server that launched it is still
alive to see its child exit. Its run monitoring notices dead workers only through the run
launcher's `check_run_worker_health`, which the DefaultRunLauncher does not implement, so
nothing notices a run started by `dagster asset materialize` (it has no launcher), or a run
whose code server died with it.

So the run says where it runs: each raw asset calls `record_run_worker` as it starts, which tags
the run with this host, this process id and that process's start time. The
`kustomer_killed_runs` sensor (every `SENSOR_INTERVAL_SECONDS`) looks at the STARTED runs tagged
with its own host and reports failed those whose process is gone and that have written nothing
for `GRACE_SECONDS`, with a message saying how to resume, and frees their pool slots. A run
failed that way can be re-executed from failure like any other (its finished 7-day windows are
kept: see `assets/raw.py`): from the UI, by the daemon's `run_retries`, or, for runs started by
the CLI (which Dagster can neither retry nor re-execute from the UI, having no code location
recorded for them), with `kustomer-assets resume RUN_ID` (`resume_from_failure`).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.executor_definition import execute_in_process_executor
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.storage.tags import TAGS_TO_MAYBE_OMIT_ON_RETRY, WILL_RETRY_TAG
from dagster._utils.hosted_user_process import recon_job_from_origin

from kustomer_assets.processes import process_alive, process_start

HOST_TAG = "kustomer/host"
PID_TAG = "kustomer/pid"
PID_START_TAG = "kustomer/pid_start"
"""The process's start time (Linux clock ticks since boot): a pid reused by another process,
as in a restarted container, does not pass for the dead worker."""
PID_RUN_TAG = "kustomer/pid_run_id"
"""The run these tags describe. A re-execution launched by the UI or the daemon inherits its
parent's tags: until its own asset starts, they name the parent's dead worker, not its own."""
ORG_TAG = "kustomer/org"
"""The prefix of the org whose asset tagged the run: each org's sensor judges its own runs."""
WORKER_TAGS = (HOST_TAG, PID_TAG, PID_START_TAG, PID_RUN_TAG)

SENSOR_NAME = "kustomer_killed_runs"
SENSOR_INTERVAL_SECONDS = 60
GRACE_SECONDS = 30
"""A run that wrote an event this recently is left alone whatever its pid says: a worker still
logging is alive (say, in another pid namespace under the same host name)."""

IN_PROCESS_EXECUTORS = frozenset({dg.in_process_executor.name, execute_in_process_executor.name})
"""Executors that run every step in the run worker's own process (the second one is what
`materialize` and `execute_in_process` use)."""
ROOT_RUN_TAG = "dagster/root_run_id"
PARENT_RUN_TAG = "dagster/parent_run_id"

_recorded_runs: set[str] = set()
"""Runs this process already tagged: a run of 15 raw assets writes its tags once."""


def record_run_worker(context: dg.AssetExecutionContext, org_prefix: str = "") -> None:
    """Tag the run with the host and process that execute it, so a killed run can be told
    from a live one (see the module docstring). Never fails the asset: without the tags, a
    killed run is only left to be failed by hand, as before.

    Only the in-process executor (the one the definitions use) runs steps in the run worker's
    own process; under any other (multiprocess, a pod per step) the step's pid ends with the
    step while the run goes on, so nothing is recorded and the sensor leaves the run alone.
    """
    try:
        run_id = context.run.run_id
        in_process = context.job_def.executor_def.name in IN_PROCESS_EXECUTORS
        if run_id in _recorded_runs or not in_process:
            return
        context.instance.add_run_tags(run_id, {**worker_tags(run_id), ORG_TAG: org_prefix})
        _recorded_runs.add(run_id)
    except Exception as error:  # the run matters more than its tags
        context.log.warning("Could not tag the run with its worker process: %s", error)


def worker_tags(run_id: str) -> dict[str, str]:
    """The tags naming this process as the worker of `run_id`."""
    pid = os.getpid()
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_RUN_TAG: run_id}
    start = process_start(pid)
    if start is not None:
        tags[PID_START_TAG] = str(start)
    return tags


def worker_alive(pid: int, start: int | None) -> bool:
    """Whether process `pid` (started at `start`, when known) still runs on this host; when in
    doubt, alive, since failing a live run is worse than leaving a dead one STARTED."""
    return process_alive(pid, start)


@dataclass(frozen=True)
class DeadWorker:
    run_id: str
    host: str
    pid: int
    silent_seconds: float


def killed_run_message(run_id: str, host: str, pid: int) -> str:
    return (
        f"The run worker died: process {pid} on {host} is gone (killed by SIGKILL, the OOM "
        "killer or a restart) and never finished this run, so it was marked failed and its "
        "pool slots freed. To resume, re-execute from failure: finished windows are kept and "
        "only the unfinished ones are fetched again (UI: Re-execute > From failure; a run "
        f"started by `dagster asset materialize`: `kustomer-assets resume {run_id}`)."
    )


def _last_event_time(instance: dg.DagsterInstance, record: dg.RunRecord) -> float:
    events = instance.get_records_for_run(record.dagster_run.run_id, limit=1, ascending=False)
    if events.records:
        return events.records[0].event_log_entry.timestamp
    return record.create_timestamp.timestamp()


def dead_worker(
    instance: dg.DagsterInstance,
    record: dg.RunRecord,
    host: str,
    grace_seconds: float,
    now: float,
) -> DeadWorker | None:
    """The dead worker of a STARTED run, or None when the run is (or may be) alive, runs on
    another host (its pid means nothing here), or carries no worker tags of its own."""
    run = record.dagster_run
    tags = run.tags
    if run.status != dg.DagsterRunStatus.STARTED or tags.get(HOST_TAG) != host:
        return None
    if tags.get(PID_RUN_TAG) != run.run_id:
        return None  # inherited from the run it re-executes; its own asset has not started
    try:
        pid = int(tags[PID_TAG])
        start = int(tags[PID_START_TAG]) if PID_START_TAG in tags else None
    except (KeyError, ValueError):
        return None
    if worker_alive(pid, start):
        return None
    silent = now - _last_event_time(instance, record)
    if silent < grace_seconds:
        return None
    return DeadWorker(run_id=run.run_id, host=host, pid=pid, silent_seconds=silent)


def fail_killed_run(instance: dg.DagsterInstance, worker: DeadWorker) -> bool:
    """Report the run failed and free its pool slots; False if it ended meanwhile.

    The worker is dead, so the status read after the liveness check is final: a run still
    STARTED then can no longer end by itself. `UNEXPECTED_TERMINATION` (not a step failure)
    keeps the run eligible for `run_retries` with `retry_on_asset_or_op_failure: false`."""
    run = instance.get_run_by_id(worker.run_id)
    if run is None or run.status != dg.DagsterRunStatus.STARTED:
        return False
    instance.report_run_failed(
        run,
        killed_run_message(worker.run_id, worker.host, worker.pid),
        JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
    )
    if run.remote_job_origin is None:
        # A CLI run records no code location: the retry daemon can only log that it cannot
        # retry it, so the UI must not say it will.
        instance.add_run_tags(worker.run_id, {WILL_RETRY_TAG: "false"})
    # Slots are otherwise freed only by the monitoring daemon, `free_slots_after_run_end_seconds`
    # after the failure, and not at all without it; a dead process holds nothing.
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(worker.run_id)
    return True


def fail_killed_runs(
    instance: dg.DagsterInstance,
    host: str | None = None,
    grace_seconds: float = GRACE_SECONDS,
    now: float | None = None,
    org_prefix: str | None = None,
) -> list[DeadWorker]:
    """Fail every STARTED run of this host whose worker is gone; returns those failed.
    With `org_prefix`, only the runs that org's assets tagged."""
    host = host or socket.gethostname()
    now = time.time() if now is None else now
    records = instance.get_run_records(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags={HOST_TAG: host})
    )
    failed = []
    for record in records:
        if org_prefix is not None and record.dagster_run.tags.get(ORG_TAG, "") != org_prefix:
            continue
        worker = dead_worker(instance, record, host, grace_seconds, now)
        if worker is not None and fail_killed_run(instance, worker):
            failed.append(worker)
    return failed


def build_killed_run_sensor(
    grace_seconds: float = GRACE_SECONDS,
    minimum_interval_seconds: int = SENSOR_INTERVAL_SECONDS,
    name: str = SENSOR_NAME,
    org_prefix: str | None = None,
) -> dg.SensorDefinition:
    """The sensor that fails killed runs.

    It starts RUNNING: it reads only the instance's run storage and signals process ids on its
    own host, spending nothing of the Kustomer API budget, unlike the sensors that start
    stopped. It runs in the code server, so it judges the runs of the host the code location is
    served from (`dagster dev`, or a code server next to the run workers). Several orgs in
    one code location each have one, named for the org and judging only the runs its assets
    tagged (`org_prefix`)."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Marks failed the runs whose worker process on this host died without a word "
            "(SIGKILL, OOM killer), so they can be re-executed from failure and free their "
            "kustomer_api pool slot. Calls no API."
        ),
    )
    def _killed_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        failed = fail_killed_runs(
            context.instance, grace_seconds=grace_seconds, org_prefix=org_prefix
        )
        for worker in failed:
            context.log.warning(
                "Run %s failed: its worker (pid %d) is gone, silent for %.0f s",
                worker.run_id,
                worker.pid,
                worker.silent_seconds,
            )
        if not failed:
            return dg.SkipReason("No run of this host has a dead worker.")
        return dg.SkipReason(
            f"Marked failed (worker died): {', '.join(w.run_id for w in failed)}; "
            "re-execute them from failure."
        )

    return _killed_runs


killed_run_sensor = build_killed_run_sensor()


def _reexecution_tags(parent: dg.DagsterRun) -> dict[str, str]:
    """The parent's tags (partition range included) as Dagster's own retries carry them,
    with the run group ids that `assets/raw.py` reads to skip finished windows."""
    tags = {
        key: value
        for key, value in parent.tags.items()
        if key not in TAGS_TO_MAYBE_OMIT_ON_RETRY and key not in WORKER_TAGS
    }
    tags[ROOT_RUN_TAG] = parent.root_run_id or parent.run_id
    tags[PARENT_RUN_TAG] = parent.run_id
    return tags


def resume_from_failure(instance: dg.DagsterInstance, run_id: str) -> dg.JobExecutionResult:
    """Re-execute a run from failure in this process, for runs the UI and the daemon cannot
    re-execute: those started by `dagster asset materialize`, which record the Python module
    they came from but no code location. A run still STARTED whose worker on this host is
    gone is failed first (no daemon needed, no grace period: someone asked)."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ValueError(f"No run {run_id} in this Dagster instance (check DAGSTER_HOME).")
    if run.status == dg.DagsterRunStatus.STARTED:
        record = instance.get_run_record_by_id(run_id)
        worker = record and dead_worker(instance, record, socket.gethostname(), 0, time.time())
        if not worker:
            raise ValueError(
                f"Run {run_id} is still running (or runs on another host): nothing to resume."
            )
        fail_killed_run(instance, worker)
        run = instance.get_run_by_id(run_id) or run
    if run.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        raise ValueError(f"Run {run_id} is {run.status.value}: only a failed run is resumed.")
    if run.job_code_origin is None:
        raise ValueError(f"Run {run_id} records no Python origin: re-execute it from the UI.")
    return dg.execute_job(
        recon_job_from_origin(run.job_code_origin),
        instance,
        tags=_reexecution_tags(run),
        reexecution_options=dg.ReexecutionOptions.from_failure(run_id, instance),
    )
