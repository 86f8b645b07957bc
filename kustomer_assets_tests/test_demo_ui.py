"""`make demo`, then `kustomer-assets ui` and a partition materialized there: one world.

The emulator generates its org relative to its `now`; a UI whose emulator had another `now`
served another org, so a partition materialized from the UI pointed at customers and tags the
demo's tables never held (`known_customer` failed, feedback rows lost their names). This runs
the demo small, starts the real `ui` command, launches a run through the webserver's GraphQL
API as the UI's Materialize button does, and reads the checks' verdicts back from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from deltalake import write_deltalake

from kustomer_assets.assets.progress import WINDOW_LINE
from kustomer_assets.demo import DemoPaths, DemoWorld, demo_world, run_demo, run_ui
from kustomer_assets.emulator import generate_dataset
from kustomer_assets.feedback.incremental import changed_rows
from kustomer_assets.lake import DeltaStore

UI_START_SECONDS = 75
RUN_SECONDS = 75

LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}"""

RUN_STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on Error { message } }
}"""

CHECK_RESULTS = """
query Checks($runId: ID!) {
  logsForRun(runId: $runId, limit: 10000) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on AssetCheckEvaluationEvent {
          evaluation { checkName assetKey { path } success severity description }
        }
      }
    }
  }
}"""

LOCATIONS = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name }
          ... on PythonError { message }
        }
      }
    }
  }
}"""

PARTITION_STATS = """
{
  assetNodes(assetKeys: [{path: ["conversations"]}, {path: ["customers"]}]) {
    assetKey { path }
    partitionStats { numMaterialized numPartitions numFailed }
  }
}"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Ui:
    process: subprocess.Popen[bytes]
    port: int
    output: Path

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/graphql",
            json={"query": query, "variables": variables},
            timeout=30,
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"`kustomer-assets ui` exited early:\n{self.output.read_text()[-3000:]}")

    def location(self) -> str:
        """The loaded code location's name, once the webserver answers and the code loaded."""
        deadline = time.monotonic() + UI_START_SECONDS
        while time.monotonic() < deadline:
            self.alive()
            try:
                workspace = self.graphql(LOCATIONS)["workspaceOrError"]
            except httpx.HTTPError:
                time.sleep(1)
                continue
            for entry in workspace.get("locationEntries", []):
                location = entry["locationOrLoadError"] or {}
                if location.get("__typename") == "PythonError":
                    pytest.fail(f"code location failed to load: {location['message']}")
                if entry["loadStatus"] == "LOADED" and location.get("name"):
                    return str(location["name"])
            time.sleep(1)
        pytest.fail(f"the UI did not load in {UI_START_SECONDS} s:\n{self.output.read_text()}")


@pytest.fixture
def ui_for(tmp_path: Path) -> Iterator[Any]:
    """Starts `kustomer-assets ui` in its own session; ends its whole process group (dagster
    dev's webserver, daemon and code servers too) even when the test fails."""
    started: list[Ui] = []

    def start(root: Path) -> Ui:
        output = tmp_path / "ui.out"
        port = _free_port()
        command = [sys.executable, "-m", "kustomer_assets.cli", "ui", "--root", str(root)]
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [*command, "--port", str(port)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        started.append(Ui(process, port, output))
        return started[-1]

    yield start
    for ui in started:
        if ui.process.poll() is None:
            os.killpg(ui.process.pid, signal.SIGINT)  # dagster dev shuts down on Ctrl-C
            with contextlib.suppress(subprocess.TimeoutExpired):
                ui.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.process.pid, signal.SIGKILL)  # whatever of the group is left
        ui.process.wait(timeout=10)


def test_demo_then_ui_materialize_yesterday_in_the_same_org_passes_its_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ui_for: Any
) -> None:
    root = tmp_path / "demo"
    run_demo(days=3, root=str(root))
    printed = capsys.readouterr().out.splitlines()

    # Quiet: our lines only, one per window; Dagster's event log is in the files it names.
    assert len(printed) < 60, "\n".join(printed)
    windows = [line for line in printed if line.startswith("  conversations ")]
    assert windows and "run " in windows[0] and "%" in windows[0], printed
    assert not any("DEBUG" in line or "SupersessionWarning" in line for line in printed)
    raw_log = (root / "logs" / "1-raw-tables.log").read_text()
    assert "STEP_START" in raw_log and "SupersessionWarning" not in raw_log
    assert any(WINDOW_LINE.match(line.split(" - ", 7)[-1]) for line in raw_log.splitlines())

    world = json.loads((root / "emulator.json").read_text())
    assert (world["seed"], world["days"]) == (7, 3)
    last_day = date.fromisoformat(world["partitions"]["last"])

    ui = ui_for(root)
    location = ui.location()
    banner = ui.output.read_text()
    assert f"DAGSTER_HOME={root / 'dagster_home'}" in banner
    assert f"KUSTOMER_DELTA_ROOT={root / 'delta'}" in banner
    assert f"KUSTOMER_PARTITIONS_START={world['partitions']['first']}" in banner

    # The demo's partitions are every partition the UI offers: 100% filled, not 4%.
    for node in ui.graphql(PARTITION_STATS)["assetNodes"]:
        stats = node["partitionStats"]
        assert stats["numMaterialized"] == stats["numPartitions"] >= 3, node

    yesterday = (last_day - timedelta(days=1)).isoformat()
    params = {
        "selector": {
            "repositoryLocationName": location,
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": [
                {"path": [name]} for name in ("conversations", "customers", "feedback")
            ],
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": yesterday}]},
    }
    launched = ui.graphql(LAUNCH_RUN, params=params)["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    status = "QUEUED"
    deadline = time.monotonic() + RUN_SECONDS
    while status not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
        ui.alive()
        time.sleep(1)
        status = ui.graphql(RUN_STATUS, runId=run_id)["runOrError"]["status"]
    assert status == "SUCCESS", f"run {run_id} ended {status}:\n{ui.output.read_text()[-3000:]}"

    events = ui.graphql(CHECK_RESULTS, runId=run_id)["logsForRun"]["events"]
    results = {
        (e["evaluation"]["assetKey"]["path"][-1], e["evaluation"]["checkName"]): e["evaluation"]
        for e in events
        if e["__typename"] == "AssetCheckEvaluationEvent"
    }
    for key in [("conversations", "known_customer"), ("feedback", "one_row_per_live_conversation")]:
        assert key in results, sorted(results)
        assert results[key]["success"], results[key]
    failed = [key for key, result in results.items() if not result["success"]]
    assert not failed, {key: results[key]["description"] for key in failed}

    # The symptom: feedback rows of the new partition lost customer, brand and tags.
    feedback = pl.read_delta(str(root / "delta" / "feedback"))
    nulls = feedback.select(
        pl.col("customer_name").is_null().sum().alias("customer_name"),
        pl.col("brand_name").is_null().sum().alias("brand_name"),
        pl.col("tag_names").list.eval(pl.element().is_null().any()).explode().sum().alias("tag"),
    ).row(0, named=True)
    assert nulls == {"customer_name": 0, "brand_name": 0, "tag": 0}, nulls


def test_ui_without_a_demo_says_to_run_the_demo_first(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="run `make demo` first"):
        run_ui(root=str(tmp_path / "nothing-here"))


def test_a_saved_world_regenerates_the_same_org() -> None:
    """What `ui` relies on: the saved settings, read back, generate identical records."""
    world = DemoWorld.new(seed=7, days=2)
    again = DemoWorld(**json.loads(json.dumps(world.__dict__)))

    def fingerprint(candidate: DemoWorld) -> dict[str, list[str]]:
        dataset = generate_dataset(candidate.emulator_config())
        return {kind: sorted(records) for kind, records in dataset.records.items()}

    assert fingerprint(again) == fingerprint(world)
    later = DemoWorld.new(seed=7, days=2, now=world.moment + timedelta(hours=3))
    assert fingerprint(later) != fingerprint(world)  # why `now` must be saved at all


def test_a_demo_folder_keeps_its_org_and_refuses_another(tmp_path: Path) -> None:
    paths = DemoPaths(tmp_path)
    saved = DemoWorld.new(seed=7, days=30)
    saved.save(paths.world)
    assert demo_world(paths, seed=7, days=30) == saved  # a rerun reloads the same org
    with pytest.raises(SystemExit, match="holds the demo of another org"):
        demo_world(paths, seed=7, days=3)
    paths.world.unlink()
    (paths.delta / "conversations").mkdir(parents=True)
    with pytest.raises(SystemExit, match="did not save its emulator settings"):
        demo_world(paths, seed=7, days=30)


def test_feedback_diff_reads_files_whose_custom_columns_differ(tmp_path: Path) -> None:
    """A rerun of `make demo` replaces every day, so the diff reads the old files of days
    written before and after a custom attribute first appeared; they must not have to share a
    schema (the rerun's feedback step failed on exactly that)."""
    store = DeltaStore(str(tmp_path / "delta"))
    uri = store.uri("notes")
    first = pl.DataFrame(
        {"id": ["n1"], "updated_at": ["2026-11-01T10:00:00"], "conversation_id": ["c1"]}
    ).with_columns(
        pl.col("updated_at").str.to_datetime(time_zone="UTC"), partition_date=pl.lit("2026-11-01")
    )
    later = first.with_columns(
        id=pl.lit("n2"), partition_date=pl.lit("2026-11-02"), custom_reason_str=pl.lit("late")
    )
    write_deltalake(uri, first, partition_by=["partition_date"])
    write_deltalake(uri, later, mode="append", partition_by=["partition_date"], schema_mode="merge")
    both = pl.concat([first, later], how="diagonal")
    write_deltalake(
        uri, both, mode="overwrite", partition_by=["partition_date"], schema_mode="merge"
    )
    assert changed_rows(store, "notes", 1, 2) is not None
    assert changed_rows(store, "notes", 1, 2).is_empty()  # same rows, other files
