"""The key check's probes, required-ness and rows come from the entity specs alone: a made-up
entity gets its probe, its report row, its `role_granted` check and its place in the job."""

import json
from dataclasses import replace

import dagster as dg
import httpx
import pytest

from kustomer_assets.checks import build_key_check_job, build_role_checks
from kustomer_assets.checks.key_check import (
    SEARCH,
    Probe,
    check_key,
    check_role,
    key_probes,
    role_required,
    search_probe,
    unlocks,
)
from kustomer_assets.checks.key_check.probes import probe_body
from kustomer_assets.entities import ENTITIES
from kustomer_assets.kustomer import KustomerClient, KustomerSettings, roles
from kustomer_assets_tests.made_up_specs import (
    GADGET_READ,
    GADGETS,
    MADE_UP,
    PART_READ,
    WIDGET_READ,
    WIDGETS,
)

KEY = "made-up-key-5d1e0c7b-DO-NOT-PRINT"


def test_a_list_entity_yields_its_probe() -> None:
    assert key_probes([WIDGETS]) == (Probe(WIDGET_READ, "/v1/widgets"),)
    (probe,) = key_probes([WIDGETS])
    assert (probe.method, probe.label, probe_body(probe)) == ("GET", "GET /v1/widgets", None)


def test_one_probe_per_role_and_none_for_by_id_sources() -> None:
    probes = key_probes(MADE_UP)
    assert [p.role for p in probes] == [WIDGET_READ, GADGET_READ]  # parts: by id, no probe
    assert probes[1] == Probe(GADGET_READ, "/v1/customers/search", "gadget")
    assert search_probe(MADE_UP) == probes[1]
    assert search_probe([WIDGETS]) is None
    body = probe_body(probes[1])
    assert body is not None and body["queryContext"] == "gadget"
    assert list(body["and"][0]) == ["gadget_updated_at"] and "sort" not in body


def test_the_spec_table_probes_every_read_role_once() -> None:
    probes = {p.role: p for p in key_probes(ENTITIES)}
    assert len(probes) == len(key_probes(ENTITIES)) == 11
    # The first entity needing the role that has a probe: klasses before kobjects, and the
    # CSAT forms list for the role the by-id CSAT responses cannot probe.
    assert probes[roles.KLASS_READ].path == "/v1/klasses"
    assert probes[roles.SATISFACTION_READ].path == "/v1/satisfaction"
    assert probes[roles.METADATA_READ].path == "/v1/metadata/conversation"
    assert probes[roles.CONVERSATION_READ].query_context == "conversation"


def test_required_comes_from_the_specs() -> None:
    assert role_required(WIDGET_READ, MADE_UP)
    assert not role_required(GADGET_READ, MADE_UP)
    assert not role_required(PART_READ, MADE_UP)
    assert not role_required("org.permission.unknown.read", MADE_UP)
    # Only an optional entity is searched: search is optional too.
    assert not role_required(SEARCH, MADE_UP)
    assert not role_required(roles.SEARCH_CREATE, MADE_UP)
    required_search = replace(GADGETS, required=True)
    assert role_required(roles.SEARCH_PREVIEW_CREATE, [WIDGETS, required_search])
    # The spec table: what the roles module used to hard-code.
    assert role_required(roles.CONVERSATION_READ)
    assert role_required(roles.SEARCH_PREVIEW_CREATE)
    assert not role_required(roles.NOTE_READ)
    required = {r for r in roles.ALL_ROLES if role_required(r)} - set(roles.SEARCH_ROLES)
    assert required == {
        roles.CONVERSATION_READ,
        roles.MESSAGE_READ,
        roles.TAG_READ,
        roles.METADATA_READ,
    }


def test_unlocks_names_the_entities_needing_the_role() -> None:
    assert unlocks(WIDGET_READ, MADE_UP) == ("widgets",)
    assert unlocks(SEARCH, MADE_UP) == ("gadgets",)
    assert unlocks(roles.SEARCH_UPDATE, MADE_UP) == ("gadgets",)
    assert unlocks("org.permission.unknown.read", MADE_UP) == ()


def _server(granted: set[str], seen: list[httpx.Request]) -> httpx.MockTransport:
    """Answers the made-up endpoints; refuses those whose role the key lacks, naming it."""

    def refuse(role: str) -> httpx.Response:
        return httpx.Response(403, json={"message": f"Missing permission {role}"})

    def page() -> httpx.Response:
        return httpx.Response(
            200, json={"data": [], "links": {"next": None}, "meta": {"page": 1, "total": 0}}
        )

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path == "/v1/users/current":
            return httpx.Response(200, json={"data": {"type": "user", "id": "u1"}})
        if path == "/v1/widgets":
            return page() if WIDGET_READ in granted else refuse(WIDGET_READ)
        if path == "/v1/customers/search" and request.method == "POST":
            assert json.loads(request.content)["queryContext"] == "gadget"
            return page() if GADGET_READ in granted else refuse(GADGET_READ)
        return httpx.Response(404, json={"message": f"no route {path}"})

    return httpx.MockTransport(handle)


def _client(granted: set[str], seen: list[httpx.Request]) -> KustomerClient:
    settings = KustomerSettings(api_key=KEY, base_url="https://made-up.test", max_retries=1)
    return KustomerClient(settings, transport=_server(granted, seen))


def test_report_rows_for_made_up_entities() -> None:
    seen: list[httpx.Request] = []
    with _client({WIDGET_READ, GADGET_READ}, seen) as client:
        report = check_key(client, MADE_UP)
    assert [(r.role, r.required, r.status) for r in report.rows] == [
        (WIDGET_READ, True, "present"),
        (SEARCH, False, "present"),
        (GADGET_READ, False, "present"),
    ]
    assert report.ok and report.requests == 3 == len(seen)
    assert report.row(WIDGET_READ).unlocks == ("widgets",)
    table = report.format_table()
    assert any(line.startswith(f"{WIDGET_READ}  required  present") for line in table.split("\n"))
    assert "All 1 required and 2 optional roles are present." in table
    assert KEY not in table


def test_a_made_up_required_role_missing_fails_the_report() -> None:
    seen: list[httpx.Request] = []
    with _client({GADGET_READ}, seen) as client:
        report = check_key(client, MADE_UP)
        row = check_role(client, WIDGET_READ, MADE_UP)
    assert not report.ok
    assert [r.role for r in report.missing_required] == [WIDGET_READ]
    assert (row.status, row.required) == ("missing", True)
    assert "403 on GET /v1/widgets" in row.detail
    with pytest.raises(ValueError, match="no probe"):
        check_role(_client(set(), []), PART_READ, MADE_UP)


def test_role_checks_and_job_follow_the_entity_list() -> None:
    checks = build_role_checks(MADE_UP)
    keys = {(c.check_key.asset_key.path[-1], c.check_key.name) for c in checks}
    assert keys == {(s.name, "role_granted") for s in MADE_UP}
    job = build_key_check_job(MADE_UP)
    assert isinstance(job, dg.JobDefinition) and job.name == "kustomer_key_check"
