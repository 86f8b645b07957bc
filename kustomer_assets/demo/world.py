"""The demo's world: its folders, the org its emulator serves, and the environment its runs get.

Demo and UI are one world. The emulator generates its org relative to its `now`, so an emulator
started later is another org: its conversations point at customers and tags the demo's tables
never held. The demo therefore saves its emulator's settings (`emulator.json`, `now` included)
in the demo folder, and `kustomer-assets ui` serves exactly that org over the demo's instance and
lake, with partitions starting at the demo's first day.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kustomer_assets.emulator import EmulatorConfig

from .output import _shown

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
