"""The by-id lookups, read from the spec: which CSAT responses a window asks for, and which
referenced customers it still lacks. Real Delta tables in a temporary folder."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from kustomer_assets.assets.lookups import ids_to_fetch, missing_references
from kustomer_assets.entities import CONVERSATIONS, CUSTOMERS, SATISFACTION, ByIdSource
from kustomer_assets.lake import DeltaStore
from kustomer_assets.records import PARTITION_COLUMN

START = datetime(2026, 11, 10, tzinfo=UTC)
END = datetime(2026, 11, 11, tzinfo=UTC)


def _at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def _write(store: DeltaStore, table: str, rows: list[dict[str, object]]) -> None:
    types = {
        "satisfaction_response_id": pl.Utf8,
        "satisfaction_updated_at": pl.Datetime("us", "UTC"),
    }
    frame = pl.DataFrame(rows, schema_overrides=types).with_columns(
        pl.col("updated_at").dt.date().alias(PARTITION_COLUMN)
    )
    frame.write_delta(store.uri(table), mode="append")


@pytest.fixture
def store(tmp_path: Path) -> DeltaStore:
    return DeltaStore(str(tmp_path / "lake"))


def _conversation(
    cid: str, updated: datetime, response: str | None, rated: datetime | None
) -> dict[str, object]:
    return {
        "id": cid,
        "updated_at": updated,
        "customer_id": f"cust-{cid}",
        "satisfaction_response_id": response,
        "satisfaction_updated_at": rated,
    }


def test_the_csat_source_names_where_its_ids_live() -> None:
    source = SATISFACTION.source
    assert isinstance(source, ByIdSource)
    assert source.ids_from == CONVERSATIONS.name
    assert source.id_column in {c.name for c in CONVERSATIONS.columns}
    assert source.changed_at_column in {c.name for c in CONVERSATIONS.columns}
    assert SATISFACTION.follows == (CONVERSATIONS.name,)


def test_window_asks_for_changed_responses_and_unfetched_ones_only(store: DeltaStore) -> None:
    source = SATISFACTION.source
    assert isinstance(source, ByIdSource)
    _write(
        store,
        CONVERSATIONS.name,
        [
            # rated inside the window, row filed on a later day: asked for (changed)
            _conversation("c1", _at(12), "r1", _at(10, 8)),
            # row in the window, rated long before, response already stored: not asked for
            _conversation("c2", _at(10), "r2", _at(1)),
            # row in the window, rated before, response never fetched: asked for
            _conversation("c3", _at(10), "r3", _at(2)),
            # outside the window entirely: not asked for
            _conversation("c4", _at(14), "r4", _at(14)),
            # no response: nothing to ask for
            _conversation("c5", _at(10), None, None),
        ],
    )
    _write(
        store,
        SATISFACTION.name,
        [{"id": "r1", "updated_at": _at(9)}, {"id": "r2", "updated_at": _at(9)}],
    )
    assert ids_to_fetch(store, SATISFACTION.name, source, START, END) == ["r1", "r3"]


def test_no_source_table_means_nothing_to_fetch(store: DeltaStore) -> None:
    source = SATISFACTION.source
    assert isinstance(source, ByIdSource)
    assert ids_to_fetch(store, SATISFACTION.name, source, START, END) == []


def test_missing_customers_are_those_the_window_points_at_and_lacks(store: DeltaStore) -> None:
    reference = CUSTOMERS.reference
    assert reference is not None and reference.table == CONVERSATIONS.name
    _write(
        store,
        CONVERSATIONS.name,
        [
            _conversation("c1", _at(10), None, None),  # cust-c1: stored
            _conversation("c2", _at(10, 3), None, None),  # cust-c2: missing
            _conversation("c3", _at(10, 4), None, None),  # cust-c3: fetched this run
            _conversation("c4", _at(13), None, None),  # outside the window
        ],
    )
    _write(store, CUSTOMERS.name, [{"id": "cust-c1", "updated_at": _at(1)}])
    missing = missing_references(store, CUSTOMERS.name, reference, START, END, {"cust-c3"})
    assert missing == ["cust-c2"]
