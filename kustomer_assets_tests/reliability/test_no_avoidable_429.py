"""Budgets used, not guessed: a real backfill of every searched table (customers among them)
against an org whose search and org budgets are small and whose rate window is short, so both
budgets bind many times over, with the connector's default budgets scaled the same way (90 of
the key's 100 searches, 500 of an Enterprise org's 1,000 requests). The server must never have
answered 429 (every one would have been avoidable: nobody else spends these budgets), the
pacing must have followed the server's 2 s window rather than idling for minutes, and the
tables must hold exactly what the org holds.
"""

from __future__ import annotations

import math

import dagster as dg

from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import CUSTOMERS, ENTITIES
from kustomer_assets.kustomer.settings import KustomerSettings
from kustomer_assets_tests.conftest import (
    Lake,
    assert_matches_truth,
    day_range,
    emulator_config,
    materialize_range,
    resources,
    run_metadata,
    truth_in_window,
)

KEY_SEARCH_PER_MINUTE = 100
"""Kustomer's search budget per API key."""
ENTERPRISE_PER_MINUTE = 1_000
"""The org budget the default `org_requests_per_minute` (500) is a share of."""
WINDOW_SECONDS = 2.0
SERVER_SEARCH = 10
SERVER_ORG = 20
OURS = {
    # The defaults scaled as the server's limits are: 90 / 100 and 500 / 1,000 of the window.
    "search_requests_per_minute": math.floor(
        SERVER_SEARCH * KustomerSettings.search_requests_per_minute / KEY_SEARCH_PER_MINUTE
    ),
    "org_requests_per_minute": math.floor(
        SERVER_ORG * KustomerSettings.org_requests_per_minute / ENTERPRISE_PER_MINUTE
    ),
    "search_page_size": 100,  # several pages per window, so the search budget binds
}
SPECS = tuple(spec for spec in ENTITIES if spec.is_searched or spec is CUSTOMERS)
ASSETS = [a for a in entity_assets if a.key in {dg.AssetKey(spec.name) for spec in SPECS}]


def test_budgets_bind_without_a_single_429_and_tables_equal_the_truth(lake: Lake) -> None:
    assert OURS["search_requests_per_minute"] == 9 and OURS["org_requests_per_minute"] == 10
    assert {spec.name for spec in SPECS} >= {"conversations", "messages", "customers", "notes"}
    first, last = day_range(9)
    config = emulator_config(
        days=11,
        scale=0.5,
        search_rate_limit=SERVER_SEARCH,
        org_rate_limit=SERVER_ORG,
        rate_window_seconds=WINDOW_SECONDS,
    )
    with Emulator(config) as server:
        res = resources(server.base_url, lake, **OURS)
        result = materialize_range(ASSETS, first, last, res)
        assert result.success
        stats = dict(server.stats)
        expected = {
            spec.name: spec.mapper.frame(truth_in_window(server, spec, first, last))
            for spec in SPECS
        }
    assert stats.get("responses.429", 0) == 0 and stats.get("rate_limited", 0) == 0, stats
    # Both budgets bound: three windows' worth of our share and more, and waits.
    assert stats["requests.search"] > 3 * OURS["search_requests_per_minute"], stats
    assert stats["requests"] > 3 * OURS["org_requests_per_minute"], stats
    metadata = {spec.name: run_metadata(result, spec.name) for spec in SPECS}
    waits = sum(metadata[spec.name]["kustomer/rate_limit_waits"] for spec in SPECS)
    waited = sum(metadata[spec.name]["kustomer/wait_seconds"] for spec in SPECS)
    assert waits >= 3, metadata
    # Paced by the server's 2 s window: one wait for a minute-long window would take longer.
    assert waited < 50, waited
    assert sum(metadata[spec.name]["kustomer/requests"] for spec in SPECS) == stats["requests"]
    for spec in SPECS:
        assert_matches_truth(lake.table(spec.name), expected[spec.name])
