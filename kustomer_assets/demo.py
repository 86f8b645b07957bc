"""The one-command demo: emulator on loopback -> real Dagster backfill -> Delta tables.

It runs the same CLI a user would (`dagster asset materialize ... --partition-range`) against a
persistent DAGSTER_HOME, so the runs and materializations it makes are the ones the UI shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

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


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def delta(self) -> Path:
        return self.root / "delta"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"


def demo_environment(base_url: str, paths: DemoPaths) -> dict[str, str]:
    """Environment that points the code location at the emulator and the demo folders."""
    env = dict(os.environ)
    for name in ("KUSTOMER_SUBDOMAIN", "KUSTOMER_PARTITIONS_START"):
        env.pop(name, None)
    env.update(
        KUSTOMER_BASE_URL=base_url,
        KUSTOMER_API_KEY=DEMO_API_KEY,
        KUSTOMER_DELTA_ROOT=str(paths.delta),
        DAGSTER_HOME=str(paths.dagster_home),
        # The demo's emulator grants a budget far above a real plan's (see DEMO_LIMITS), so the
        # first load's one-request-per-record fetches (CSAT answers, old customers) do not wait.
        KUSTOMER_ORG_REQUESTS_PER_MINUTE=str(DEMO_LIMITS["org_rate_limit"] - 100),
        KUSTOMER_SEARCH_REQUESTS_PER_MINUTE=str(DEMO_LIMITS["search_rate_limit"] - 10),
    )
    return env


def partition_range(days: int, today: datetime | None = None) -> tuple[str, str]:
    """The last `days` UTC days, today's open partition included."""
    today = (today or datetime.now(UTC)).date()
    return (today - timedelta(days=days - 1)).isoformat(), today.isoformat()


def dagster_executable() -> str:
    candidate = Path(sys.executable).with_name("dagster")
    return str(candidate) if candidate.exists() else "dagster"


def materialize(env: dict[str, str], assets: list[str], days: tuple[str, str] | None) -> None:
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
    print(f"$ {' '.join(command)}", flush=True)
    subprocess.run(command, env=env, check=True)


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


def run_demo(days: int = 30, root: str = ".demo", seed: int = 7) -> None:
    paths = DemoPaths(Path(root).resolve())
    prepare_home(paths)
    started = time.monotonic()
    config = EmulatorConfig(seed=seed, days=days, api_keys={DEMO_API_KEY: None}, **DEMO_LIMITS)
    with Emulator(config) as emulator:
        print(f"Kustomer emulator on {emulator.base_url} (seed {seed}, {days} days of history)")
        first, last = partition_range(days)
        env = demo_environment(emulator.base_url, paths)
        materialize(env, [spec.name for spec in ENTITIES], (first, last))
        # feedback is unpartitioned: a plain materialization once the raw tables are in.
        materialize(env, [FEEDBACK], None)
        requests = dict(emulator.stats)
    elapsed = time.monotonic() - started
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, tbl_rows=-1):
        print("\nTables written under", paths.delta)
        print(table_summary(paths.delta))
    print(
        f"Partitions {first}...{last}: {requests.get('requests', 0)} API requests "
        f"({requests.get('requests.search', 0)} searches), {elapsed:.1f} s in all."
    )
    print(
        "\nOpen the result in the Dagster UI:\n"
        f"  DAGSTER_HOME={paths.dagster_home} KUSTOMER_DELTA_ROOT={paths.delta} "
        ".venv/bin/kustomer-assets ui\n"
        "then browse http://127.0.0.1:3000 (Assets -> conversations -> Partitions / Events)."
    )


def run_ui(root: str = ".demo", port: int = 3000, seed: int = 7, days: int = 30) -> None:
    """Dagster UI over the demo's instance, with an emulator so materializing still works."""
    paths = DemoPaths(Path(root).resolve())
    prepare_home(paths)
    config = EmulatorConfig(seed=seed, days=days, api_keys={DEMO_API_KEY: None}, **DEMO_LIMITS)
    with Emulator(config) as emulator:
        env = demo_environment(emulator.base_url, paths)
        command = [dagster_executable(), "dev", "-w", "workspace.yaml", "-p", str(port)]
        subprocess.run(command, env=env, check=False)
