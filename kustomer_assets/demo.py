"""The one-command demo: emulator on loopback -> real Dagster backfill -> Delta tables.

It runs the same CLI a user would (`dagster asset materialize ... --partition-range`) against a
persistent DAGSTER_HOME, so the runs and materializations it makes are the ones the UI shows.

Demo and UI are one world. The emulator generates its org relative to its `now`, so an emulator
started later is another org: its conversations point at customers and tags the demo's tables
never held. The demo therefore saves its emulator's settings (`emulator.json`, `now` included)
in the demo folder, and `kustomer-assets ui` serves exactly that org over the demo's instance and
lake, with partitions starting at the demo's first day.

The runs' full event logs go to `<root>/logs/`; the terminal gets one line per window (read
back from the run's log as it is written) and a line per run with its checks' verdicts.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from kustomer_assets.assets.progress import WINDOW_LINE, format_duration
from kustomer_assets.emulator import Emulator, EmulatorConfig
from kustomer_assets.entities import ENTITIES
from kustomer_assets.feedback.build import FEEDBACK

DEMO_API_KEY = "emulator-demo-key"
"""The emulator's own key: not a secret, and still never printed."""

INSTANCE_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
  free_slots_after_run_end_seconds: 30
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
"""
"""The demo's dagster.yaml, also the recommended instance config (README "When a run is
killed"). One slot per pool: runs calling Kustomer (pool `kustomer_api`) queue, not race.
`run_monitoring` fails runs stuck starting and frees the pool slots of runs that ended without
releasing them; with a DefaultRunLauncher it cannot see a dead worker, which is what the
`kustomer_killed_runs` sensor (`run_recovery`) is for. `run_retries` re-executes a failed run
from failure (Dagster's default strategy) when its worker crashed; asset failures are not
retried (`retry_on_asset_or_op_failure: false`): the client already retries what is transient,
and a missing role or a bad setting fails the same way twice."""

DEMO_LIMITS = {"org_rate_limit": 6000, "search_rate_limit": 600}

SUPERSEDED_CLI_WARNINGS = "ignore::FutureWarning:click.core"
"""Dagster 1.13 marks `dagster asset materialize` and `dagster dev` superseded by `dg launch` /
`dg dev` (a SupersessionWarning, a FutureWarning raised from click's dispatch) on every call.
It is advice for whoever picks the commands, not for the demo's user, and `dg` needs
dagster-dg-cli, which the project does not install; the filter matches only warnings raised
from click.core, i.e. the CLI's own supersession notices."""

WORLD_FILE = "emulator.json"
MAKE_CLEAN = "`make clean` (it removes .demo)"

DAGSTER_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} - dagster - (?P<level>[A-Z]+) - \S+ - "
    r"(?P<run>[0-9a-f]{8}-[0-9a-f-]{27}) - (?:(?P<pid>\d+) - )?(?P<step>\S+) - (?P<message>.*)$"
)
"""A line of Dagster's console log: our own log calls carry no pid, Dagster's events do."""


RUN_STATUS_WORDS = {"SUCCESS": "succeeded", "FAILURE": "failed", "CANCELED": "was canceled"}


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def delta(self) -> Path:
        return self.root / "delta"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def world(self) -> Path:
        return self.root / WORLD_FILE


@dataclass(frozen=True)
class DemoWorld:
    """Everything the emulator's org is generated from, and the partitions the demo loads."""

    seed: int
    days: int
    now: str
    """ISO timestamp (UTC, milliseconds) the org's history ends at."""
    org_rate_limit: int
    search_rate_limit: int

    @classmethod
    def new(cls, seed: int, days: int, now: datetime | None = None) -> DemoWorld:
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        moment = moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)
        return cls(
            seed=seed, days=days, now=moment.isoformat(timespec="milliseconds"), **DEMO_LIMITS
        )

    @property
    def moment(self) -> datetime:
        return datetime.fromisoformat(self.now).astimezone(UTC)

    @property
    def partitions(self) -> tuple[str, str]:
        return partition_range(self.days, self.moment)

    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(
            seed=self.seed,
            days=self.days,
            now=self.moment,
            api_keys={DEMO_API_KEY: None},
            org_rate_limit=self.org_rate_limit,
            search_rate_limit=self.search_rate_limit,
        )

    def describe(self) -> str:
        return (
            f"seed {self.seed}, {self.days} days of history up to "
            f"{self.moment:%Y-%m-%d %H:%M:%S} UTC"
        )

    def save(self, path: Path) -> None:
        first, last = self.partitions
        body = {**asdict(self), "partitions": {"first": first, "last": last}}
        path.write_text(json.dumps(body, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> DemoWorld:
        try:
            body = json.loads(path.read_text())
            return cls(**{name: body[name] for name in cls.__dataclass_fields__})
        except (ValueError, KeyError, TypeError) as error:
            raise SystemExit(
                f"{path} is not a demo's emulator settings ({error}): {MAKE_CLEAN}, then "
                "`make demo` again."
            ) from None


def demo_environment(base_url: str, paths: DemoPaths, world: DemoWorld) -> dict[str, str]:
    """Environment that points the code location at the emulator and the demo folders.

    Every KUSTOMER_* variable of the caller's shell is dropped: a real org's subdomain, an
    automation switch or a partition start would make the demo something else. Automation that
    calls Kustomer stays stopped, so nothing polls an emulator that is gone once the demo ends.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("KUSTOMER_")}
    warnings = [os.environ.get("PYTHONWARNINGS", ""), SUPERSEDED_CLI_WARNINGS]
    env.update(
        PYTHONWARNINGS=",".join(filter(None, warnings)),
        KUSTOMER_BASE_URL=base_url,
        KUSTOMER_API_KEY=DEMO_API_KEY,
        KUSTOMER_DELTA_ROOT=str(paths.delta),
        KUSTOMER_PARTITIONS_START=world.partitions[0],
        KUSTOMER_AUTOMATION_RUNNING="false",
        DAGSTER_HOME=str(paths.dagster_home),
        # The demo's emulator grants a budget far above a real plan's (see DEMO_LIMITS), so the
        # first load's one-request-per-record fetches (CSAT answers, old customers) do not wait.
        KUSTOMER_ORG_REQUESTS_PER_MINUTE=str(world.org_rate_limit - 100),
        KUSTOMER_SEARCH_REQUESTS_PER_MINUTE=str(world.search_rate_limit - 10),
    )
    return env


def partition_range(days: int, today: datetime | None = None) -> tuple[str, str]:
    """The last `days` UTC days, today's open partition included."""
    day = (today or datetime.now(UTC)).astimezone(UTC).date()
    return (day - timedelta(days=days - 1)).isoformat(), day.isoformat()


def dagster_executable() -> str:
    candidate = Path(sys.executable).with_name("dagster")
    return str(candidate) if candidate.exists() else "dagster"


def materialize_command(assets: list[str], days: tuple[str, str] | None) -> list[str]:
    """`dagster asset materialize`, as a user would type it; `days` makes it a range run."""
    command = [
        dagster_executable(),
        "asset",
        "materialize",
        "-m",
        "kustomer_assets.definitions",
        "--select",
        ",".join(assets),
    ]
    if days:
        command += ["--partition-range", f"{days[0]}...{days[1]}"]
    return command


def table_summary(delta_root: Path) -> pl.DataFrame:
    rows = []
    for name, key in [*((spec.name, "id") for spec in ENTITIES), (FEEDBACK, "conversation_id")]:
        uri = delta_root / name
        if not uri.exists():
            rows.append({"table": name, "rows": 0, "ids": 0})
            continue
        counts = (
            pl.scan_delta(str(uri))
            .select(pl.len().alias("rows"), pl.col(key).n_unique().alias("ids"))
            .collect()
            .row(0, named=True)
        )
        rows.append({"table": name, **counts})
    return pl.DataFrame(rows)


def prepare_home(paths: DemoPaths) -> None:
    """A Dagster instance folder for the demo, with `INSTANCE_YAML`; telemetry is off since
    the machine may be offline."""
    paths.dagster_home.mkdir(parents=True, exist_ok=True)
    config = paths.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)


def demo_world(paths: DemoPaths, seed: int, days: int) -> DemoWorld:
    """The org this demo folder holds: the saved one when it matches, a new one for a new
    folder, and a refusal otherwise (two orgs in one lake is the corruption the file exists to
    prevent)."""
    if paths.world.exists():
        world = DemoWorld.load(paths.world)
        if (world.seed, world.days) != (seed, days):
            raise SystemExit(
                f"{_shown(paths.root)} holds the demo of another org ({world.describe()}); "
                f"{MAKE_CLEAN} or pass another --root for a demo with seed {seed} and "
                f"{days} days."
            )
        return world
    if paths.delta.exists() and any(paths.delta.iterdir()):
        raise SystemExit(
            f"{_shown(paths.root)} holds tables from a demo that did not save its emulator "
            f"settings, so they cannot be matched to an org: {MAKE_CLEAN}, then `make demo`."
        )
    return DemoWorld.new(seed, days)


# ----------------------------------------------------------------------------- the demo


def run_demo(days: int = 30, root: str = ".demo", seed: int = 7) -> None:
    paths = DemoPaths(Path(root).resolve())
    world = demo_world(paths, seed, days)
    reused = paths.world.exists()
    prepare_home(paths)
    paths.logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    first, last = world.partitions
    raw = [spec.name for spec in ENTITIES]
    with Emulator(world.emulator_config()) as emulator:
        world.save(paths.world)
        say(f"Kustomer emulator on {emulator.base_url}: {world.describe()}")
        say(
            f"  {'reused from' if reused else 'saved to'} {_shown(paths.world)}: "
            "`kustomer-assets ui` serves this same org"
        )
        say(
            f"Dagster instance {_shown(paths.dagster_home)}, Delta tables "
            f"{_shown(paths.delta)}, run logs {_shown(paths.logs)}\n"
        )
        env = demo_environment(emulator.base_url, paths, world)
        steps = [
            (
                f"{len(raw)} raw tables, partitions {first}...{last}, one run",
                materialize_command(raw, (first, last)),
                "1-raw-tables.log",
            ),
            # feedback is unpartitioned: a plain materialization once the raw tables are in.
            ("feedback", materialize_command([FEEDBACK], None), "2-feedback.log"),
        ]
        for number, (title, command, log_name) in enumerate(steps, start=1):
            say(f"[{number}/{len(steps)}] {title}")
            run_step(command, env, paths, paths.logs / log_name)
        requests = dict(emulator.stats)
    elapsed = time.monotonic() - started
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, tbl_rows=-1):
        say(f"\nTables written under {_shown(paths.delta)}")
        say(table_summary(paths.delta))
    say(
        f"Partitions {first}...{last}: {requests.get('requests', 0)} API requests "
        f"({requests.get('requests.search', 0)} searches), {elapsed:.1f} s in all."
    )
    ui = ".venv/bin/kustomer-assets ui" + (
        "    (or: make ui)" if root == ".demo" else f" --root {root}"
    )
    say(
        "\nNext, the same org in the Dagster UI:\n"
        f"  {ui}\n"
        "then browse http://127.0.0.1:3000: Assets -> conversations -> Partitions shows the "
        f"{days} days filled, and\nmaterializing any of them there reloads it from this same "
        "org (the UI's emulator reads emulator.json)."
    )


@dataclass
class StepOutcome:
    run_id: str | None
    returncode: int


def run_step(command: list[str], env: dict[str, str], paths: DemoPaths, log_path: Path) -> None:
    """Run one `dagster asset materialize` with its output in `log_path`, print our lines as
    they arrive, then the run's verdict; a failed run ends the demo with its errors."""
    say(f"  $ {_short_command(command)}")
    say(f"  full log: {_shown(log_path)}")
    step_started = time.monotonic()
    with log_path.open("w") as log_file:
        log_file.write(f"$ {shlex.join(command)}\n")
        log_file.flush()
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    outcome = StepOutcome(run_id=None, returncode=0)
    try:
        with log_path.open() as reader:
            for line in follow(reader, process):
                _show_line(line, outcome)
    finally:
        # Ctrl-C reaches the run too: give it the time to record its end before leaving.
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    outcome.returncode = process.returncode
    seconds = time.monotonic() - step_started
    verdict = run_verdict(paths.dagster_home, outcome.run_id) if outcome.run_id else None
    lines = verdict.lines(seconds) if verdict else [f"run ended ({format_duration(seconds)})"]
    if outcome.returncode == 0:
        for line in lines:
            say(f"  {line}")
        return
    say(f"  FAILED (exit {outcome.returncode}): {lines[0] if verdict else 'no run started'}")
    for line in lines[1:]:
        say(f"  {line}")
    if verdict is None:
        say("    last lines of the log:")
        for tail in log_path.read_text().splitlines()[-15:]:
            say(f"    {tail}")
    raise SystemExit(f"The demo stopped: see {_shown(log_path)} for the whole run log.")


def follow(reader: TextIO, process: subprocess.Popen[Any]) -> Iterator[str]:
    """Complete lines of a log file while the process writing it runs, then the rest."""
    pending = ""
    while True:
        running = process.poll() is None
        chunk = reader.read()
        if chunk:
            pending += chunk
            *lines, pending = pending.split("\n")
            yield from lines
        elif not running:
            break
        else:
            time.sleep(0.2)
    if pending:
        yield pending


def _show_line(line: str, outcome: StepOutcome) -> None:
    """Our INFO/WARNING lines (compacted when a window line), and Dagster's errors."""
    match = DAGSTER_LINE.match(line)
    if match is None:
        return  # Dagster's DEBUG continuation lines, tracebacks, warnings: in the log file
    outcome.run_id = outcome.run_id or match["run"]
    level, step, message = match["level"], match["step"], match["message"]
    if match["pid"] is not None:  # a Dagster event: only failures belong on the terminal
        if level in ("ERROR", "CRITICAL"):
            say(f"  error: {step}: {message}")
        return
    if level == "DEBUG":
        return
    window = WINDOW_LINE.match(message)
    if window is not None:
        say(_window_row(window))
        if window["done"] == window["total"]:
            say("  every window is loaded; the run's checks follow")
        return
    text = message if message.startswith(step) else f"{step}: {message}"
    prefix = "" if level == "INFO" else f"{level.lower()}: "
    say(f"  {prefix}{text}")


def _window_row(window: re.Match[str]) -> str:
    days = window["days"]
    if "/" in days:
        first, end = (date.fromisoformat(day) for day in days.split("/"))
        days = f"{first:%m-%d}..{end - timedelta(days=1):%m-%d}"
    done = window["done"] == window["total"]
    eta = "" if done or not window["eta"] else f", ETA {window['eta']}"
    rows, requests = window["rows"], window["requests"]
    return (
        f"  {window['table']:<18} {window['number']:>2}/{window['windows']:<2} {days:<12} "
        f"{rows:>7} {'row ' if rows == '1' else 'rows'} {requests:>5} "
        f"{'request ' if requests == '1' else 'requests'}   run {window['percent']:>3}%{eta}"
    )


@dataclass
class RunVerdict:
    run_id: str
    status: str
    seconds: float | None
    checks: Counter[str]
    """Check results by verdict: passed, warned, failed."""
    not_passed: Counter[str]
    """'warned: partition_fresh on brands' -> how many partitions."""
    failures: list[str]
    """'brands: <the one sentence that says what to fix>' per failed step."""

    def lines(self, with_start_up: float) -> list[str]:
        took = "" if self.seconds is None else f" in {format_duration(self.seconds)}"
        head = f"run {self.run_id[:8]} {self.status}{took} ({format_duration(with_start_up)} "
        head += "with start-up)"
        total = sum(self.checks.values())
        if total and self.checks["passed"] == total:
            head += f"; {total} check results, all passed"
        elif total:
            counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.checks.items()))
            head += f"; {total} check results: {counts}"
        details = [
            f"  {what}" + (f" ({n} partitions)" if n > 1 else "")
            for what, n in sorted(self.not_passed.items())
        ]
        return [head, *details, *(f"  failed: {failure}" for failure in self.failures)]


def run_verdict(dagster_home: Path, run_id: str) -> RunVerdict | None:
    """The run's status and check results from the instance itself: Dagster's log text is not
    an interface, its event records are."""
    import dagster as dg
    from dagster._core.events import DagsterEventType

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        record = instance.get_run_record_by_id(run_id)
        if record is None:
            return None
        evaluations = instance.get_records_for_run(
            run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION, limit=100_000
        ).records
        step_failures = instance.get_records_for_run(
            run_id, of_type=DagsterEventType.STEP_FAILURE, limit=1_000
        ).records
    seconds = None
    if record.start_time and record.end_time:
        seconds = record.end_time - record.start_time
    verdict = RunVerdict(
        run_id=run_id,
        status=RUN_STATUS_WORDS.get(record.dagster_run.status.value, "ended"),
        seconds=seconds,
        checks=Counter(),
        not_passed=Counter(),
        failures=[],
    )
    for entry in step_failures:
        event = entry.event_log_entry.dagster_event
        data = event.step_failure_data if event else None
        if data is None:
            continue
        # A dg.Failure carries the one sentence that says what to fix; anything else its error.
        said = data.user_failure_data.description if data.user_failure_data else None
        if not said and data.error is not None:
            cause = data.error.cause or data.error
            said = cause.message.strip().splitlines()[-1]
        said = said or "see the log"
        step = event.step_key or "run"
        verdict.failures.append(said if said.startswith(f"{step}:") else f"{step}: {said}")
    for entry in evaluations:
        event = entry.event_log_entry.dagster_event
        evaluation = event.event_specific_data if event else None
        if evaluation is None:
            continue
        if evaluation.passed:
            verdict.checks["passed"] += 1
            continue
        kind = "warned" if evaluation.severity == dg.AssetCheckSeverity.WARN else "failed"
        verdict.checks[kind] += 1
        verdict.not_passed[
            f"{kind}: {evaluation.check_name} on {evaluation.asset_key.to_user_string()}"
        ] += 1
    return verdict


def say(*parts: object) -> None:
    """print, flushed: the demo's lines must appear while its runs work, also through a pipe."""
    print(*parts, flush=True)


def _short_command(command: list[str]) -> str:
    """The command with the executable's folder dropped (it is the venv's `dagster`)."""
    return shlex.join([Path(command[0]).name, *command[1:]])


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- the UI


def run_ui(root: str = ".demo", port: int = 3000) -> None:
    """Dagster UI over the demo's instance and lake, with an emulator serving the demo's org,
    so materializing a partition from the UI writes the data the demo's tables belong with."""
    paths = DemoPaths(Path(root).resolve())
    if not paths.world.exists():
        if paths.delta.exists():
            raise SystemExit(
                f"{_shown(paths.root)} was made by a demo that did not save its emulator "
                f"settings: {MAKE_CLEAN}, then `make demo`, then `make ui`."
            )
        raise SystemExit(
            f"No demo in {_shown(paths.root)}: run `make demo` first "
            "(or `kustomer-assets demo --root ...`), then `make ui`."
        )
    world = DemoWorld.load(paths.world)
    prepare_home(paths)
    with Emulator(world.emulator_config()) as emulator:
        env = demo_environment(emulator.base_url, paths, world)
        first, last = world.partitions
        say(f"Dagster UI over the demo in {_shown(paths.root)}: http://127.0.0.1:{port}")
        say(f"  DAGSTER_HOME={env['DAGSTER_HOME']}")
        say(f"  KUSTOMER_DELTA_ROOT={env['KUSTOMER_DELTA_ROOT']}")
        say(f"  KUSTOMER_PARTITIONS_START={first} (the demo loaded {first}...{last})")
        say(f"  Kustomer emulator on {emulator.base_url}: the demo's org, {world.describe()}")
        if datetime.now(UTC).date().isoformat() > last:
            say(
                f"  (days after {last} are empty in this org; {MAKE_CLEAN} and `make demo` "
                "make one dated today)"
            )
        say("Ctrl-C stops the UI and the emulator.\n")
        command = [
            dagster_executable(),
            "dev",
            "-m",
            "kustomer_assets.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ]
        process = subprocess.Popen(command, env=env)
        try:
            process.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached `dagster dev` too: let it stop its webserver and daemon (the
            # emulator must outlive them), and only then give up on it.
            try:
                process.wait(timeout=30)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                process.kill()
            return
    if process.returncode:
        raise SystemExit(f"`dagster dev` ended with exit status {process.returncode}.")
