"""By-id entities loaded on a thread as soon as their ids are known, beside the searching steps.

Why: a run's steps run one after another in one process, which is what lets them share the
run's API budget. A by-id phase (CSAT responses: one request each, on the org budget) and the
searched entities (messages, customers, notes: mostly on the search budget) then took the sum
of their times, each leaving the other budget idle. Now, when the step of the table a by-id
entity takes its ids from (`ByIdSource.ids_from`: conversations) has loaded, it starts that
entity's load on a thread; the executor runs the entity's own step last among the steps
ready (`STEP_PRIORITY`), and that step waits for the thread and reports what it loaded. The
threads share the process's budget objects, so together they stay within both budgets, and
they give way to the steps (`budget.yielding`: room kept for them, paced while they are quiet,
second to a waiting step): a step's request never waits a window for the thread's.

The thread runs the very load the step would run, with the run's commit notes: when it fails,
the step logs why and loads itself, skipping the windows the thread finished, as a retried run
does. Started only where the entity's step will run in this process (an in-process executor,
the entity among the run's steps, not switched off) and the org's pool limits runs, not steps
(`pool_allows`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from kustomer_assets.entities import ByIdSource, EntitySpec
from kustomer_assets.kustomer.budget import yielding
from kustomer_assets.org import Org
from kustomer_assets.run_recovery import IN_PROCESS_EXECUTORS

_log = logging.getLogger(__name__)


class LogLines:
    """A logger for the thread: a step's Dagster log belongs to its step, so the lines are kept
    and replayed into the by-id entity's own step, and also go to Python logging at once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def _add(self, level: int, message: str, *args: object) -> None:
        text = message % args if args else message
        with self._lock:
            self.lines.append((level, text))
        _log.log(level, "%s (background): %s", self.name, text)

    def debug(self, message: str, *args: object) -> None:
        self._add(logging.DEBUG, message, *args)

    def info(self, message: str, *args: object) -> None:
        self._add(logging.INFO, message, *args)

    def warning(self, message: str, *args: object) -> None:
        self._add(logging.WARNING, message, *args)

    def error(self, message: str, *args: object) -> None:
        self._add(logging.ERROR, message, *args)

    def replay(self, log: Any) -> None:
        """Into the step's log, from INFO up (the per-request budget waits stay in Python
        logging: thousands of them would bury the window lines)."""
        with self._lock:
            lines, self.lines = self.lines, []
        for level, text in lines:
            if level >= logging.INFO:
                log.log(level, "(loaded in the background) %s", text)


@dataclass
class BackgroundLoad:
    """One by-id entity's load running on a thread for one run."""

    spec: EntitySpec
    log: LogLines
    thread: threading.Thread | None = None
    result: Any = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def run(self, load: Callable[[Any], Any]) -> None:
        try:
            with yielding():  # the run's steps first: they wait on this thread's requests
                self.result = load(self.log)
        except BaseException as error:  # handed to the entity's step, which decides
            self.error = error
        finally:
            self.done.set()


_LOADS: dict[tuple[str, str], BackgroundLoad] = {}
_LOADS_LOCK = threading.Lock()


def step_key(org: Org, spec: EntitySpec) -> str:
    """The step key Dagster gives the entity's asset (its key's path joined by `__`)."""
    return "__".join(org.asset_key(spec.name).path)


def pool_allows(context: dg.AssetExecutionContext, org: Org) -> bool:
    """Whether a thread may call Kustomer beside the run's steps without breaking the org's
    pool: it holds no slot, so with a limit per step (op granularity) another run's step
    could call Kustomer beside it, each process spending its own share of the budgets. A
    limit per run (`granularity: run`), or no limit on the pool, leaves nothing to break."""
    try:
        config = context.instance.get_concurrency_config().pool_config
        if config.pool_granularity == "run":
            return True
        if config.default_pool_limit is not None:
            return False
        limits = context.instance.event_log_storage.get_pool_limits()
    except Exception:  # a storage without pools limits nothing
        return True
    return all(limit.name != org.pool for limit in limits)


def runs_in_this_process(context: dg.AssetExecutionContext, org: Org, spec: EntitySpec) -> bool:
    """Whether `spec`'s step is one this run will execute here, after the current step."""
    job = context.job_def
    if job.executor_def.name not in IN_PROCESS_EXECUTORS:
        return False
    if org.asset_key(spec.name) not in job.asset_layer.selected_asset_keys:
        return False
    steps = context.run.step_keys_to_execute
    return steps is None or step_key(org, spec) in steps


def start_dependents(
    spec: EntitySpec,
    entities: tuple[EntitySpec, ...],
    org: Org,
    context: dg.AssetExecutionContext,
    wanted: Callable[[EntitySpec], bool],
    load: Callable[[EntitySpec, Any], Any],
) -> list[str]:
    """Start the by-id entities that take their ids from `spec` (now loaded), where `wanted`
    and their step runs here; `load(dependent, log)` is what their step would run. Returns
    the entities started."""
    started: list[str] = []
    for dependent in entities:
        source = dependent.source
        if not isinstance(source, ByIdSource) or source.ids_from != spec.name:
            continue
        if not wanted(dependent) or not runs_in_this_process(context, org, dependent):
            continue
        if not pool_allows(context, org):
            context.log.info(
                "%s: loaded by its own step, not beside the others: pool %s limits steps, "
                "not runs (set `concurrency: pools: granularity: run` to let it)",
                dependent.name,
                org.pool,
            )
            continue
        key = (context.run.run_id, step_key(org, dependent))
        background = BackgroundLoad(dependent, LogLines(dependent.name))
        with _LOADS_LOCK:
            if key in _LOADS:
                continue
            _LOADS[key] = background
        background.thread = threading.Thread(
            target=background.run,
            args=(lambda log, d=dependent: load(d, log),),
            name=f"kustomer-background-{dependent.name}",
            daemon=True,  # a killed run must not wait for it
        )
        background.thread.start()
        started.append(dependent.name)
    return started


def take(context: dg.AssetExecutionContext, org: Org, spec: EntitySpec) -> BackgroundLoad | None:
    """The background load of `spec` in this run, once finished (waits for it), or None."""
    with _LOADS_LOCK:
        background = _LOADS.pop((context.run.run_id, step_key(org, spec)), None)
    if background is None:
        return None
    if not background.done.is_set():
        context.log.info("%s: waiting for its background load to finish", spec.name)
    background.done.wait()
    background.log.replay(context.log)
    return background
