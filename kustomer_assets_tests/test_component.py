"""The Kustomer component in someone else's Dagster project, and several orgs in one location.

The project is made the way a Dagster user makes one (`create-dagster project`, `dg scaffold
defs`), offline: every request to a package registry would go to a dead proxy. Its code
location is loaded, listed and launched by `dg` itself, against two emulators with different
data, and each org's tables are compared with its own emulator's records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import ENTITIES_BY_NAME
from kustomer_assets.factory import KustomerSetupError, kustomer_definitions
from kustomer_assets.org import OrgNameError
from kustomer_assets_tests.conftest import (
    TEST_KEY,
    assert_matches_truth,
    day_range,
    emulator_config,
    expected_records,
)

BIN = Path(sys.executable).parent
COMPONENT = "kustomer_assets.component.KustomerComponent"
COMPARED = ("conversations", "customers", "messages", "notes", "users", "satisfaction")
FAST = {"org_requests_per_minute": 5000, "search_requests_per_minute": 5000}


def _env(project: Path, home: Path) -> dict[str, str]:
    dead = "http://127.0.0.1:9"  # nothing listens: a registry request fails at once
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(project / "src"),
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "HTTP_PROXY": dead,
        "HTTPS_PROXY": dead,
        "NO_PROXY": "127.0.0.1,localhost",
        "PIP_INDEX_URL": dead,
        "UV_OFFLINE": "1",
        "ACME_KEY": TEST_KEY,
        "GLOBEX_KEY": TEST_KEY,
        "COLUMNS": "200",
    }


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    assert TEST_KEY not in done.stdout + done.stderr
    return done.stdout


def _defs_yaml(prefix: str, server: Emulator) -> str:
    return (
        f"type: {COMPONENT}\n"
        "attributes:\n"
        f"  base_url: {server.base_url}\n"
        f"  api_key_env: {prefix.upper()}_KEY\n"
        f"  delta_root: data/{prefix}/delta\n"
        f"  prefix: {prefix}\n"
        f"  org_requests_per_minute: {FAST['org_requests_per_minute']}\n"
        f"  search_requests_per_minute: {FAST['search_requests_per_minute']}\n"
    )


def _assert_org_matches(root: Path, server: Emulator, first: str, last: str) -> None:
    import polars as pl

    for name in COMPARED:
        spec = ENTITIES_BY_NAME[name]
        expected = spec.mapper.frame(expected_records(server, spec, first, last))
        assert_matches_truth(pl.read_delta(str(root / name)), expected)


def test_a_fresh_dg_project_with_two_kustomer_orgs(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    project = tmp_path / "support_analytics"
    env = _env(project, home)
    _run([str(BIN / "create-dagster"), "project", str(project), "--no-uv-sync"], tmp_path, env)

    listed = json.loads(_run([str(BIN / "dg"), "list", "components", "--json"], project, env))
    assert COMPONENT in {row["key"] for row in listed["items"]}

    first, last = day_range(7)
    with (
        Emulator(emulator_config(seed=21)) as acme,
        Emulator(emulator_config(seed=42, days=8)) as globex,
    ):
        for prefix, server in (("acme", acme), ("globex", globex)):
            _run([str(BIN / "dg"), "scaffold", "defs", COMPONENT, prefix], project, env)
            yaml = project / "src" / "support_analytics" / "defs" / prefix / "defs.yaml"
            template = yaml.read_text()  # the scaffold's: the settings to fill in
            assert "api_key_env: KUSTOMER_API_KEY" in template and "prefix: kustomer" in template
            yaml.write_text(_defs_yaml(prefix, server))

        defs = json.loads(_run([str(BIN / "dg"), "list", "defs", "--json"], project, env))
        assets = {row["asset_key"] for row in defs["assets"]}
        assert {"acme/conversations", "globex/conversations", "acme/feedback"} <= assets
        assert not {key for key in assets if "/" not in key}, "every key has its org's prefix"
        assert {row["name"] for row in defs["resources"]} >= {
            "acme_kustomer",
            "acme_lake",
            "globex_kustomer",
            "globex_lake",
        }
        sensors = {row["name"] for row in defs["sensors"]}
        assert {"acme_kustomer_changes", "globex_kustomer_changes"} <= sensors
        assert {"acme_kustomer_automation", "globex_kustomer_automation"} <= sensors
        assert "default_automation_condition_sensor" not in sensors  # the project's to make
        assert {"acme_kustomer_sync", "globex_kustomer_sync"} <= {j["name"] for j in defs["jobs"]}

        for prefix in ("acme", "globex"):  # the org's own job: every raw table, one process
            command = [str(BIN / "dg"), "launch", "--job", f"{prefix}_kustomer_sync"]
            _run([*command, "--partition-range", f"{first}...{last}"], project, env)

        _assert_org_matches(project / "data" / "acme" / "delta", acme, first, last)
        _assert_org_matches(project / "data" / "globex" / "delta", globex, first, last)
        acme_ids = set(_ids(project / "data" / "acme" / "delta"))
        globex_ids = set(_ids(project / "data" / "globex" / "delta"))
        assert acme_ids != globex_ids, "the two emulators serve different data"

    # A misspelt setting is refused by `dg check yaml`, naming it, before anything loads.
    # (Given no path, dg 1.13 validates one file per component type: name the folder.)
    folder = project / "src" / "support_analytics" / "defs" / "acme"
    yaml = folder / "defs.yaml"
    yaml.write_text(yaml.read_text() + "  subdomian: acme\n")
    checked = subprocess.run(
        [str(BIN / "dg"), "check", "yaml", str(folder)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert checked.returncode != 0
    assert "subdomian" in checked.stdout + checked.stderr


def _ids(root: Path) -> list[str]:
    import polars as pl

    return pl.read_delta(str(root / "conversations"))["id"].to_list()


def _org(prefix: str, server: Emulator, root: Path) -> dg.Definitions:
    return kustomer_definitions(
        base_url=server.base_url,
        api_key_env=f"{prefix.upper()}_KEY",
        delta_root=str(root),
        prefix=prefix,
        **FAST,
    )


def test_two_orgs_share_no_key_cursor_or_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_KEY", TEST_KEY)
    monkeypatch.setenv("GLOBEX_KEY", TEST_KEY)
    first, last = day_range(5)
    with (
        Emulator(emulator_config(seed=5)) as acme,
        Emulator(emulator_config(seed=6)) as globex,
    ):
        orgs = {
            "acme": _org("acme", acme, tmp_path / "acme"),
            "globex": _org("globex", globex, tmp_path / "globex"),
        }
        defs = dg.Definitions.merge(*orgs.values())
        repository = defs.get_repository_def()  # validates: no name clashes
        graph = defs.resolve_asset_graph()
        keys = {
            prefix: set(d.resolve_asset_graph().get_all_asset_keys()) for prefix, d in orgs.items()
        }
        assert not keys["acme"] & keys["globex"]
        pools = {
            prefix: set().union(*(graph.get(key).pools or set() for key in k))
            for prefix, k in keys.items()
        }
        assert pools == {"acme": {"kustomer_api_acme"}, "globex": {"kustomer_api_globex"}}
        names = {s.name for s in repository.sensor_defs} | {
            s.name for s in repository.schedule_defs
        }
        for base in ("kustomer_changes", "kustomer_webhook_events", "finalize_yesterday"):
            assert {f"acme_{base}", f"globex_{base}"} <= names
            assert base not in names

        job = defs.resolve_implicit_global_asset_job_def()
        with dg.instance_for_test() as instance:
            for prefix in ("acme", "globex"):
                selection = [
                    dg.AssetKey([prefix, name])
                    for name in ("conversations", "customers", "messages", "notes", "users")
                ]
                result = job.execute_in_process(
                    asset_selection=[*selection, dg.AssetKey([prefix, "satisfaction"])],
                    instance=instance,
                    tags={
                        "dagster/asset_partition_range_start": first,
                        "dagster/asset_partition_range_end": last,
                    },
                )
                assert result.success
                checks = result.get_asset_check_evaluations()
                assert checks and all(c.asset_key.path[0] == prefix for c in checks)
                assert all(c.passed for c in checks if c.check_name == "complete_vs_api")
            feedback = job.execute_in_process(
                asset_selection=[dg.AssetKey(["acme", "feedback"])], instance=instance
            )
            assert feedback.success
            # Each org's change sensor keeps its own cursor and asks only for its own tables.
            for prefix in ("acme", "globex"):
                sensor = repository.get_sensor_def(f"{prefix}_kustomer_changes")
                context = dg.build_sensor_context(
                    instance=instance,
                    resources={f"{prefix}_kustomer": orgs[prefix].resources[f"{prefix}_kustomer"]},
                )
                outcome = sensor(context)
                requested = {k for r in outcome.run_requests for k in r.asset_selection}
                assert requested and all(k.path[0] == prefix for k in requested)
    _assert_org_matches(tmp_path / "acme", acme, first, last)
    _assert_org_matches(tmp_path / "globex", globex, first, last)
    import polars as pl

    built = pl.read_delta(str(tmp_path / "acme" / "feedback"))
    live = {
        r["id"] for r in acme.truth("conversation") if not r["attributes"].get("deleted")
    } & set(pl.read_delta(str(tmp_path / "acme" / "conversations"))["id"].to_list())
    assert set(built["conversation_id"].to_list()) == live
    assert not (tmp_path / "globex" / "feedback").exists()


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"entities": ["conversations", "orders"]}, "Unknown Kustomer entities orders"),
        ({"entities": ["satisfaction"]}, "satisfaction is loaded from conversations"),
        ({"api_key_env": "sk-live-8f3a-0b21"}, "must be the NAME of an environment variable"),
        ({"switched_off": ["customers"]}, "cannot be switched off"),
        ({"prefix": "acme-eu"}, "is not usable as a Dagster name"),
        ({"delta_root": None}, "set delta_root"),
        ({"freshness_warn_hours": 60, "freshness_fail_hours": 50}, "at most freshness_fail"),
        (
            {"base_url": None, "subdomain": "acme.kustomerapp.com"},
            "subdomain of Kustomer org acme must be a single DNS label",
        ),
        ({"base_url": "http://kustomer.example.com"}, "base_url of Kustomer org acme"),
        ({"search_requests_per_minute": -5}, "search_requests_per_minute must be 1 or more"),
        ({"first_sync_days": 0}, "first_sync_days must be 1 or more"),
        ({"entities": []}, "entities is empty"),
        (
            {"storage_options": {"AWS_SECRET_ACCESS_KEY": "sk-live-123"}},
            "move it to storage_option_env",
        ),
    ],
)
def test_bad_settings_get_one_sentence_before_anything_runs(
    settings: dict[str, object], says: str
) -> None:
    arguments: dict[str, object] = {
        "base_url": "http://127.0.0.1:9",
        "delta_root": "/tmp/unused",
        "prefix": "acme",
    }
    arguments.update(settings)
    with pytest.raises((KustomerSetupError, OrgNameError)) as raised:
        kustomer_definitions(**arguments)  # type: ignore[arg-type]
    message = str(raised.value)
    assert says in message
    assert "sk-live" not in message  # a pasted key is never echoed


def test_a_run_names_the_orgs_own_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors that say KUSTOMER_DELTA_ROOT or KUSTOMER_API_KEY for the single-org location
    name the org's own settings instead, and cost no request."""
    monkeypatch.setenv("ACME_KEY", TEST_KEY)
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    with Emulator(emulator_config()) as server:
        defs = _org("acme", server, a_file)
        job = defs.resolve_implicit_global_asset_job_def()
        with dg.instance_for_test() as instance:
            result = job.execute_in_process(
                asset_selection=[dg.AssetKey(["acme", "brands"])],
                instance=instance,
                partition_key=day_range(1)[0],
                raise_on_error=False,
            )
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        message = failure.step_failure_data.error.message
        assert "delta_root of Kustomer org acme" in message
        assert "KUSTOMER_DELTA_ROOT" not in message
        assert not any(server.stats.values()), "no request before the root is usable"


def test_an_org_added_to_a_project_leaves_its_executor_and_assets_alone(
    tmp_path: Path,
) -> None:
    """The project's own executor, assets and automation sensor stay theirs: the org brings
    a sensor scoped to its assets and an in-process job for its own runs."""

    @dg.asset(automation_condition=dg.AutomationCondition.eager())
    def customers() -> None:  # the project's own asset, named like one of ours
        return None

    project = dg.Definitions(
        assets=[customers],
        executor=dg.multiprocess_executor,
        sensors=[
            dg.AutomationConditionSensorDefinition(
                "default_automation_condition_sensor", target=dg.AssetSelection.assets(customers)
            )
        ],
    )
    org = kustomer_definitions(
        base_url="http://127.0.0.1:9", delta_root=str(tmp_path), prefix="kustomer"
    )
    merged = dg.Definitions.merge(project, org)
    repository = merged.get_repository_def()  # no overlapping automation selections
    assert merged.executor is dg.multiprocess_executor
    ours = repository.get_sensor_def("kustomer_kustomer_automation")
    graph = merged.resolve_asset_graph()
    covered = ours.asset_selection.resolve(graph)
    assert dg.AssetKey(["kustomer", "feedback"]) in covered
    assert dg.AssetKey("customers") not in covered
    sync = repository.get_job("kustomer_kustomer_sync")
    assert sync.executor_def is dg.in_process_executor
    changes = repository.get_sensor_def("kustomer_kustomer_changes")
    assert changes.job_name == "kustomer_kustomer_sync"
