"""A key's missing roles are named the same way by `kustomer-assets check` and by a run.

Search needs a search role *and* the read role of its context; a key without search roles
used to load `customers` as 0 rows with exit 0 and blame `customer.read`, which it had.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pytest

from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.checks.key_check import SEARCH, check_key
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import ENTITIES, SearchSource
from kustomer_assets.kustomer import (
    KustomerClient,
    KustomerPermissionError,
    KustomerSettings,
    roles,
)
from kustomer_assets_tests.conftest import Lake, emulator_config, resources
from kustomer_assets_tests.kustomer.fake_server import FakeKustomer, make_client

EVERY_READ_ROLE = frozenset(
    {
        roles.CONVERSATION_READ,
        roles.MESSAGE_READ,
        roles.TAG_READ,
        roles.METADATA_READ,
        roles.KLASS_READ,
        roles.CUSTOMER_READ,
        roles.TEAM_READ,
        roles.USER_READ,
        roles.NOTE_READ,
        roles.SATISFACTION_READ,
        roles.BRAND_READ,
    }
)
NO_SEARCH = "roles-no-search-31c9a0d2-DO-NOT-PRINT"
NO_CUSTOMER = "roles-no-customer-7d2e41b8-DO-NOT-PRINT"
SEARCHED = [spec for spec in ENTITIES if isinstance(spec.source, SearchSource)]
ASSETS = {a.key.path[-1]: a for a in entity_assets}


@pytest.fixture(scope="module", params=[403, 401], ids=["403", "401"])
def server(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    keys = {
        NO_SEARCH: EVERY_READ_ROLE,
        NO_CUSTOMER: (EVERY_READ_ROLE - {roles.CUSTOMER_READ}) | {roles.SEARCH_CREATE},
    }
    config = emulator_config(
        days=2, scale=0.2, api_keys=keys, permission_error_status=request.param
    )
    with Emulator(config) as emulator:
        yield emulator


def _run(server: Emulator, lake: Lake, key: str, name: str) -> dg.ExecuteInProcessResult:
    res = resources(server.base_url, lake, api_key=key)
    today = datetime.now(UTC).date().isoformat()
    return dg.materialize([ASSETS[name]], resources=res, partition_key=today, raise_on_error=False)


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    events = result.get_step_failure_events()
    assert events, "the run should have failed"
    error = events[0].step_failure_data.error
    assert error is not None
    return error.message


@pytest.mark.parametrize("spec", SEARCHED, ids=[s.name for s in SEARCHED])
def test_missing_search_roles_fail_every_searched_entity(
    server: Emulator, lake: Lake, spec
) -> None:
    result = _run(server, lake, NO_SEARCH, spec.name)
    assert not result.success, f"{spec.name} must fail, optional or not"
    text = _failure_text(result)
    assert roles.SEARCH_CREATE in text
    assert spec.role not in text.split("needed for")[0], "blamed the read role the key has"
    assert "create a new key" in text
    assert NO_SEARCH not in text
    with KustomerClient(KustomerSettings(api_key=NO_SEARCH, base_url=server.base_url)) as client:
        report = check_key(client)
    assert [row.role for row in report.missing_required] == [SEARCH]


def test_a_missing_read_role_behind_search_is_named_and_skipped(
    server: Emulator, lake: Lake
) -> None:
    result = _run(server, lake, NO_CUSTOMER, "customers")
    assert result.success
    (materialization,) = result.asset_materializations_for_node("customers")
    metadata = materialization.metadata
    assert metadata["missing_role"].value == roles.CUSTOMER_READ
    assert metadata["skipped"].value is True
    with KustomerClient(KustomerSettings(api_key=NO_CUSTOMER, base_url=server.base_url)) as c:
        report = check_key(c)
    assert report.row(roles.CUSTOMER_READ).status == "missing"
    assert report.row(SEARCH).status == "present"
    assert not report.missing_required


def test_a_server_that_names_no_role_is_asked_once_which_is_missing() -> None:
    """Search refused with a bare 403: one conversation search tells the search role from
    the read role (a conversation search refused too means search is what is missing)."""
    server = FakeKustomer(missing_roles={roles.SEARCH_CREATE})
    with make_client(server) as client:
        window = client.search_window(
            "customer",
            datetime(2026, 11, 1, tzinfo=UTC),
            datetime(2026, 11, 2, tzinfo=UTC),
            role=roles.CUSTOMER_READ,
        )
        with pytest.raises(KustomerPermissionError) as info:
            list(window)
    assert info.value.role == roles.SEARCH_CREATE
    assert roles.SEARCH_CREATE in str(info.value)
    probes = [r for r in server.requests if r.url.path == "/v1/customers/search"]
    assert len(probes) == 2  # the refused search and the one conversation search
