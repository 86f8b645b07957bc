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

Modules: `world` (folders, the saved org, the runs' environment), `steps` (one materialization and
its terminal lines), `verdict` (a run's checks from the instance), `output` (printing, table
counts), `commands` (`run_demo`, `run_ui`). Every name is importable from `kustomer_assets.demo`.
"""

from .commands import run_demo, run_ui
from .output import say, table_summary
from .steps import (
    DAGSTER_LINE,
    StepOutcome,
    dagster_executable,
    follow,
    materialize_command,
    run_step,
)
from .verdict import RUN_STATUS_WORDS, RunVerdict, run_verdict
from .world import (
    DEMO_API_KEY,
    DEMO_LIMITS,
    INSTANCE_YAML,
    MAKE_CLEAN,
    SUPERSEDED_CLI_WARNINGS,
    WORLD_FILE,
    DemoPaths,
    DemoWorld,
    demo_environment,
    demo_world,
    partition_range,
    prepare_home,
)

__all__ = [
    "DAGSTER_LINE",
    "DEMO_API_KEY",
    "DEMO_LIMITS",
    "INSTANCE_YAML",
    "MAKE_CLEAN",
    "RUN_STATUS_WORDS",
    "SUPERSEDED_CLI_WARNINGS",
    "WORLD_FILE",
    "DemoPaths",
    "DemoWorld",
    "RunVerdict",
    "StepOutcome",
    "dagster_executable",
    "demo_environment",
    "demo_world",
    "follow",
    "materialize_command",
    "partition_range",
    "prepare_home",
    "run_demo",
    "run_step",
    "run_ui",
    "run_verdict",
    "say",
    "table_summary",
]
