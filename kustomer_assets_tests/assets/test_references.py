"""Referenced customers are fetched once, after every window of the run, and only those no
window brought; the cheaper of GETs and a search sweep is taken. Real emulator, real lake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import CONVERSATIONS, CUSTOMERS
from kustomer_assets.records import parse_timestamp
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

ASSETS = [a for a in entity_assets if a.key.path[-1] in (CONVERSATIONS.name, CUSTOMERS.name)]


def _referenced_outside(server: Emulator, first: str, last: str) -> set[str]:
    """Customers the range's conversations point at whose last update lies outside it: what
    no window's search can bring, so exactly what must be fetched by id."""
    start = datetime.fromisoformat(first).replace(tzinfo=UTC)
    end = datetime.fromisoformat(last).replace(tzinfo=UTC) + timedelta(days=1)
    conversations = truth_in_window(server, CONVERSATIONS, first, last)
    column = next(c for c in CONVERSATIONS.columns if c.name == "customer_id")
    referenced = {column.extract(c) for c in conversations} - {None}
    updated = {
        c["id"]: parse_timestamp(c["attributes"]["updatedAt"])
        for c in server.truth(CUSTOMERS.kustomer_type, include_deleted=True)
    }
    return {cid for cid in referenced if not (start <= updated[cid] < end)}


def test_a_multi_window_range_gets_only_what_no_window_brought(lake: Lake) -> None:
    with Emulator(emulator_config(days=30, scale=0.5)) as server:
        first, last = day_range(20)  # three windows
        outside = _referenced_outside(server, first, last)
        assert outside, "the org has customers last updated before the range"
        res = resources(server.base_url, lake, search_requests_per_minute=90)
        result = materialize_range(ASSETS, first, last, res)
        assert server.stats.get("requests.get_customer", 0) == len(outside)
        metadata = run_metadata(result, CUSTOMERS.name)
        assert metadata["windows"] == 3
        assert metadata["rows_outside_window"] == len(outside)
        assert_matches_truth(
            lake.table(CUSTOMERS.name),
            CUSTOMERS.mapper.frame(truth_in_window(server, CUSTOMERS, first, last)),
        )
        # A rerun finds nothing missing and asks for nothing by id.
        materialize_range(ASSETS, first, last, res)
        assert server.stats.get("requests.get_customer", 0) == len(outside)


def test_many_missing_records_are_swept_by_search_when_that_is_cheaper(lake: Lake) -> None:
    """With searches plentiful and GETs scarce, a sweep of the time before the range brings
    the missing customers; the table is the same as GETs would have made it."""
    with Emulator(emulator_config(days=30, scale=0.5)) as server:
        first, last = day_range(5)
        outside = _referenced_outside(server, first, last)
        assert len(outside) >= 5
        res = resources(
            server.base_url, lake, org_requests_per_minute=1000, search_requests_per_minute=5000
        )
        with dg.instance_for_test() as instance:
            result = materialize_range(ASSETS, first, last, res, instance=instance)
            said = [e.user_message for e in instance.all_logs(result.run_id)]
        assert server.stats.get("requests.get_customer", 0) < len(outside)
        assert any("fetched by a search sweep" in line for line in said), said
        assert_matches_truth(
            lake.table(CUSTOMERS.name),
            CUSTOMERS.mapper.frame(truth_in_window(server, CUSTOMERS, first, last)),
        )


def _assert_customers_equal_truth(server: Emulator, lake: Lake, first: str, last: str) -> None:
    expected = CUSTOMERS.mapper.frame(truth_in_window(server, CUSTOMERS, first, last))
    assert_matches_truth(lake.table(CUSTOMERS.name), expected)
