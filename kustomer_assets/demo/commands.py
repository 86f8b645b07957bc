"""`kustomer-assets demo` and `kustomer-assets ui`: the demo's runs against its emulator, and the
Dagster UI over the same org, instance and lake.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import ENTITIES
from kustomer_assets.feedback.build import FEEDBACK

from .output import _shown, say, table_summary
from .steps import dagster_executable, materialize_command, run_step
from .world import MAKE_CLEAN, DemoPaths, DemoWorld, demo_environment, demo_world, prepare_home


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
