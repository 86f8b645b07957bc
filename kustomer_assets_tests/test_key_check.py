"""The API-key role check against the real emulator on loopback: the report, the
`kustomer-assets check` command (exit codes, no key in any output), the per-entity
`role_granted` asset checks and the `kustomer_key_check` job."""

import logging
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest

from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.checks import key_check_job, role_checks
from kustomer_assets.checks.key_check import (
    SEARCH,
    KeyReport,
    check_key,
    check_role,
    key_probes,
    role_required,
)
from kustomer_assets.checks.roles import ROLE_GRANTED
from kustomer_assets.cli import main
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import ENTITIES
from kustomer_assets.kustomer import KustomerClient, KustomerSettings, roles
from kustomer_assets_tests.conftest import (
    Lake,
    day_range,
    emulator_config,
    materialize_range,
    resources,
)

FULL_KEY = "kc-full-4f1d9a77e2-DO-NOT-PRINT"
REQUIRED_KEY = "kc-required-8b3c0e51aa-DO-NOT-PRINT"
NO_TAG_KEY = "kc-no-tag-2e7f6d19c4-DO-NOT-PRINT"
NO_SEARCH_KEY = "kc-no-search-9a0b3c5d7e-DO-NOT-PRINT"
WRONG_KEY = "kc-wrong-6c2a8e4f10-DO-NOT-PRINT"
ALL_KEYS = (FULL_KEY, REQUIRED_KEY, NO_TAG_KEY, NO_SEARCH_KEY, WRONG_KEY)

REQUIRED_ROLES = frozenset(
    {
        roles.CONVERSATION_READ,
        roles.MESSAGE_READ,
        roles.TAG_READ,
        roles.METADATA_READ,
        roles.SEARCH_PREVIEW_CREATE,  # any one of the four search roles is enough
    }
)
OPTIONAL_ROLES = sorted(
    {
        roles.KLASS_READ,
        roles.CUSTOMER_READ,
        roles.TEAM_READ,
        roles.USER_READ,
        roles.NOTE_READ,
        roles.SATISFACTION_READ,
        roles.BRAND_READ,
    }
)
PROBES = key_probes()
EVERY_ROW = [probe.role for probe in PROBES] + [SEARCH]
NEW_KEY_SENTENCE = (
    "roles cannot be edited on a key: create a new key in Kustomer "
    "(Settings → Security → API Keys) with"
)


@pytest.fixture(scope="module", params=[403, 401], ids=["403", "401"])
def server(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """One emulator per permission-error style: 403, or 401 as older reference pages say."""
    keys = {
        FULL_KEY: None,
        REQUIRED_KEY: REQUIRED_ROLES,
        NO_TAG_KEY: REQUIRED_ROLES - {roles.TAG_READ},
        NO_SEARCH_KEY: (REQUIRED_ROLES - {roles.SEARCH_PREVIEW_CREATE}) | {roles.NOTE_READ},
    }
    config = emulator_config(
        days=2, scale=0.2, api_keys=keys, permission_error_status=request.param
    )
    with Emulator(config) as emulator:
        yield emulator


def client_for(server: Emulator, key: str) -> KustomerClient:
    return KustomerClient(KustomerSettings(api_key=key, base_url=server.base_url))


def report_for(server: Emulator, key: str) -> KeyReport:
    with client_for(server, key) as client:
        return check_key(client)


def api_requests(server: Emulator) -> int:
    return sum(n for name, n in server.stats.items() if name.startswith("requests."))


def run_cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    env: dict[str, str],
) -> tuple[int, str, str]:
    """`kustomer-assets check` with only `env` set; returns (exit code, stdout, stderr)."""
    for name in ("KUSTOMER_SUBDOMAIN", "KUSTOMER_BASE_URL", "KUSTOMER_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SystemExit) as exit_info:
        main(["check"])
    out, err = capsys.readouterr()
    for text in (out, err, caplog.text):
        for key in ALL_KEYS:
            assert key not in text
    return exit_info.value.code, out, err


def table_line(out: str, role: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(role + " "))


# ----------------------------------------------------------------------------- the report


def test_full_key_every_role_present(server: Emulator) -> None:
    before = api_requests(server)
    report = report_for(server, FULL_KEY)
    assert report.ok
    assert [row.role for row in report.rows] == [
        *(p.role for p in PROBES if role_required(p.role)),
        SEARCH,
        *(p.role for p in PROBES if not role_required(p.role)),
    ]
    assert {row.status for row in report.rows} == {"present"}
    # users/current plus one request per probe, each through the client and counted.
    assert report.requests == len(PROBES) + 1 == api_requests(server) - before
    assert report.row(roles.KLASS_READ).unlocks == ("klasses", "kobjects")
    assert set(report.row(SEARCH).unlocks) == {
        "conversations",
        "messages",
        "customers",
        "notes",
        "kobjects",
    }
    assert {name for row in report.rows for name in row.unlocks} == {s.name for s in ENTITIES}


def test_required_only_key_reports_optional_missing(server: Emulator) -> None:
    report = report_for(server, REQUIRED_KEY)
    assert report.ok
    assert sorted(r.role for r in report.missing_optional) == OPTIONAL_ROLES
    assert not report.missing_required
    assert all(row.status == "present" for row in report.rows if row.required)


def test_missing_search_role_leaves_searched_roles_unknown(server: Emulator) -> None:
    report = report_for(server, NO_SEARCH_KEY)
    assert not report.ok
    assert report.row(SEARCH).status == "missing"
    assert roles.SEARCH_CREATE in report.row(SEARCH).detail  # the role the server named
    for role in (roles.CONVERSATION_READ, roles.MESSAGE_READ, roles.NOTE_READ):
        row = report.row(role)
        assert (row.status, row.needs) == ("unknown", SEARCH)
        assert row.status_text == "unknown (needs search)"
    assert report.row(roles.TAG_READ).status == "present"
    assert [r.role for r in report.missing_required] == [SEARCH]


def test_server_error_is_reported_as_error(server: Emulator) -> None:
    with KustomerClient(
        KustomerSettings(
            api_key=FULL_KEY, base_url=server.base_url, max_retries=1, backoff_base_seconds=0.01
        )
    ) as client:
        server.set_faults(1.0, **{"500": 1.0})
        try:
            row = check_role(client, roles.TAG_READ)
        finally:
            server.set_faults(0.0)
    assert row.status == "error"
    assert "500" in row.detail and "/v1/tags" in row.detail


# ----------------------------------------------------------------------------- the command


def test_cli_full_key_exit_0(server, monkeypatch, capsys, caplog) -> None:
    env = {"KUSTOMER_BASE_URL": server.base_url, "KUSTOMER_API_KEY": FULL_KEY}
    code, out, err = run_cli(monkeypatch, capsys, caplog, env)
    assert code == 0, err
    for role in EVERY_ROW:
        assert "present" in table_line(out, role)
    assert "All 5 required and 7 optional roles are present." in out
    assert f"({len(PROBES) + 1} requests)" in out


def test_cli_required_only_exit_0_names_missing_optional(
    server, monkeypatch, capsys, caplog
) -> None:
    env = {"KUSTOMER_BASE_URL": server.base_url, "KUSTOMER_API_KEY": REQUIRED_KEY}
    code, out, _ = run_cli(monkeypatch, capsys, caplog, env)
    assert code == 0
    for role in OPTIONAL_ROLES:
        assert "optional  missing" in table_line(out, role)
    assert "0 required and 7 optional roles missing" in out
    assert "skipped with a warning" in out
    assert NEW_KEY_SENTENCE not in out


def test_cli_missing_required_exit_1(server, monkeypatch, capsys, caplog) -> None:
    env = {"KUSTOMER_BASE_URL": server.base_url, "KUSTOMER_API_KEY": NO_TAG_KEY}
    code, out, _ = run_cli(monkeypatch, capsys, caplog, env)
    assert code == 1
    assert "required  missing" in table_line(out, roles.TAG_READ)
    assert "1 required and 7 optional roles missing (org.permission.tag.read" in out
    assert NEW_KEY_SENTENCE in out and "set KUSTOMER_API_KEY." in out


def test_cli_wrong_key_exit_2(server, monkeypatch, capsys, caplog) -> None:
    env = {"KUSTOMER_BASE_URL": server.base_url, "KUSTOMER_API_KEY": WRONG_KEY}
    code, out, err = run_cli(monkeypatch, capsys, caplog, env)
    assert code == 2
    assert out == ""
    assert "Kustomer rejected the API key" in err and "KUSTOMER_API_KEY" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_bad_subdomain_exit_2_before_any_request(monkeypatch, capsys, caplog) -> None:
    def no_request(*args: object, **kwargs: object) -> httpx.Response:
        raise AssertionError("a request was sent despite invalid settings")

    monkeypatch.setattr(httpx.Client, "send", no_request)
    env = {"KUSTOMER_SUBDOMAIN": "acme.kustomerapp.com", "KUSTOMER_API_KEY": FULL_KEY}
    code, out, err = run_cli(monkeypatch, capsys, caplog, env)
    assert code == 2
    assert out == ""
    assert "KUSTOMER_SUBDOMAIN must be a single DNS label" in err


def test_401_and_403_servers_give_the_same_report(server: Emulator) -> None:
    """Both fixtures' emulators must give these exact statuses, whatever their error style."""
    expected = {
        REQUIRED_KEY: {row: "missing" for row in OPTIONAL_ROLES},
        NO_TAG_KEY: {roles.TAG_READ: "missing", SEARCH: "present"},
        NO_SEARCH_KEY: {SEARCH: "missing", roles.CONVERSATION_READ: "unknown"},
    }
    for key, statuses in expected.items():
        report = report_for(server, key)
        assert {role: report.row(role).status for role in statuses} == statuses


# ----------------------------------------------------------------------------- Dagster


def role_evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.asset_key.to_user_string(): e
        for e in result.get_asset_check_evaluations()
        if e.check_name == ROLE_GRANTED
    }


def test_role_checks_pass_and_fail_with_severity(server: Emulator, tmp_path: Path) -> None:
    assert len(role_checks) == len(ENTITIES)
    for check in role_checks:
        assert not any(spec.blocking for spec in check.check_specs)
    res = resources(server.base_url, Lake(tmp_path / "delta"), api_key=NO_TAG_KEY)
    result = dg.materialize(
        [*entity_assets, *role_checks],
        resources=res,
        selection=dg.AssetSelection.all_asset_checks(),
    )
    assert result.success  # failed checks never fail the run: they only report
    assert not result.asset_materializations_for_node("conversations")
    evaluations = role_evaluations(result)
    assert set(evaluations) == {spec.name for spec in ENTITIES}
    conversations, tags, brands = (evaluations[n] for n in ("conversations", "tags", "brands"))
    assert conversations.passed
    assert not tags.passed and tags.severity == dg.AssetCheckSeverity.ERROR
    assert not brands.passed and brands.severity == dg.AssetCheckSeverity.WARN
    metadata = {k: v.value for k, v in tags.metadata.items()}
    assert metadata["role"] == roles.TAG_READ and metadata["required"] is True
    assert metadata["status"] == "missing" and "/v1/tags" in metadata["detail"]


def asset_requests(result: dg.ExecuteInProcessResult, name: str) -> int:
    """What the asset's own client sent in this run (its run metadata), 0 when not run."""
    events = result.asset_materializations_for_node(name)
    value = events[0].metadata.get("run/kustomer/requests") if events else None
    return 0 if value is None else int(value.value)


def test_role_checks_after_a_load_in_the_same_run_cost_no_request(
    server: Emulator, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "delta")
    res = resources(server.base_url, lake, api_key=FULL_KEY, switched_off=["messages"])
    first, last = day_range(2)
    before = api_requests(server)
    result = materialize_range([*entity_assets, *role_checks], first, last, res)
    assert result.success
    spent = api_requests(server) - before
    evaluations = role_evaluations(result)
    assert set(evaluations) == {spec.name for spec in ENTITIES}
    assert all(e.passed for e in evaluations.values())
    probed = {name for name, e in evaluations.items() if e.metadata["probed"].value}
    # Every table the run loaded proved its role: those checks sent nothing. The table the
    # run skipped (switched off) proved nothing, so its check probed, with one request.
    assert probed == {"messages"}
    loaded = sum(asset_requests(result, spec.name) for spec in ENTITIES)
    assert loaded > len(ENTITIES)
    assert spent == loaded + 1, (spent, loaded)
    tags = {k: v.value for k, v in evaluations["tags"].metadata.items()}
    assert tags["status"] == "present" and "no probe was sent" in tags["detail"]


def test_role_checks_fail_with_error_on_a_rejected_key(server: Emulator, tmp_path: Path) -> None:
    res = resources(server.base_url, Lake(tmp_path / "delta"), api_key=WRONG_KEY)
    brands_check = next(
        c for c in role_checks if dg.AssetKey("brands") in {k.asset_key for k in c.check_keys}
    )
    result = dg.materialize(
        [*entity_assets, brands_check],
        resources=res,
        selection=dg.AssetSelection.all_asset_checks(),
    )
    brands = role_evaluations(result)["brands"]
    assert not brands.passed and brands.severity == dg.AssetCheckSeverity.ERROR
    assert WRONG_KEY not in str(brands.metadata)


def test_key_check_job(server: Emulator, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "delta")
    ok_defs = dg.Definitions(
        jobs=[key_check_job], resources=resources(server.base_url, lake, api_key=FULL_KEY)
    )
    result = ok_defs.get_job_def("kustomer_key_check").execute_in_process()
    assert result.success
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    metadata = {k: v.value for k, v in output.step_output_data.metadata.items()}
    assert metadata["ok"] is True and metadata["requests"] == len(PROBES) + 1
    assert metadata["missing_required"] == []

    bad_defs = dg.Definitions(
        jobs=[key_check_job],
        resources=resources(server.base_url, lake, api_key=NO_TAG_KEY),
    )
    failed = bad_defs.get_job_def("kustomer_key_check").execute_in_process(raise_on_error=False)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    assert NEW_KEY_SENTENCE in error.message
    user_failure = failure.step_failure_data.user_failure_data
    assert user_failure is not None
    assert {k: v.value for k, v in user_failure.metadata.items()}["missing_required"] == [
        roles.TAG_READ
    ]
