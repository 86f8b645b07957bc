"""search_window against servers that refuse deep paging in different ways."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import httpx
import pytest

from kustomer_assets.kustomer import KustomerIncompleteError, roles
from kustomer_assets_tests.kustomer.fake_server import (
    WINDOW_END,
    WINDOW_START,
    FakeClock,
    FakeKustomer,
    make_client,
    window_records,
)


def _expected(records: list[dict]) -> set[str]:
    start, end = "2026-11-01T00:00:00.000Z", "2026-11-02T00:00:00.000Z"
    return {r["id"] for r in records if start <= r["attributes"]["updatedAt"] < end}


def _run(server: FakeKustomer, **overrides: object) -> tuple[Counter[str], object, object]:
    clock = FakeClock()
    with make_client(server, clock, **overrides) as client:
        window = client.search_window(
            "conversation", WINDOW_START, WINDOW_END, role=roles.CONVERSATION_READ
        )
        ids: Counter[str] = Counter()
        for page in window:
            assert page, "empty pages are not yielded"
            ids.update(r["id"] for r in page)
    return ids, window, client


def test_body_shape_and_paging_with_next() -> None:
    records = window_records(count=230, tie=0)
    server = FakeKustomer(search={"conversation": records})
    ids, window, client = _run(server)
    assert set(ids) == _expected(records) and max(ids.values()) == 1
    assert window.reported_total == 230 and window.records == 230  # type: ignore[attr-defined]
    first = server.requests[0]
    assert first.method == "POST" and first.url.path == "/v1/customers/search"
    assert first.url.params["page"] == "1" and first.url.params["pageSize"] == "500"
    body = json.loads(first.content)
    assert body == {
        "queryContext": "conversation",
        "and": [
            {"conversation_updated_at": {"gte": "2026-11-01T00:00:00.000Z"}},
            {"conversation_updated_at": {"lt": "2026-11-02T00:00:00.000Z"}},
        ],
        "sort": [{"conversation_updated_at": "asc"}],
        "includeDeleted": True,
    }
    # Every page is page 1 of a query that starts at the last updatedAt seen (a cursor, never
    # a page number over a set that moves); the fourth request is the closing count.
    assert [r.url.params["page"] for r in server.requests] == ["1", "1", "1", "1"]
    bodies = [json.loads(r.content) for r in server.requests]
    ordered = sorted(records[:230], key=lambda r: (r["attributes"]["updatedAt"], r["id"]))
    for n, later in enumerate(bodies[1:3], start=1):
        last_seen = ordered[99 * n]["attributes"]["updatedAt"]  # pages overlap by one
        assert later["and"][0] == {"conversation_updated_at": {"gte": last_seen}}
        assert later["and"][1] == body["and"][1] and later["sort"] == body["sort"]
    assert bodies[3] == body and server.requests[3].url.params["pageSize"] == "1"
    assert client.stats.search_requests == 4  # type: ignore[attr-defined]
    assert client.stats.window_narrowings == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("refusal", ["missing_next", "404", "400"])
def test_1250_records_with_400_tie_at_3_page_cap(refusal: str) -> None:
    records = window_records(count=1250, tie=400)
    server = FakeKustomer(
        search={"conversation": records}, page_cap=3, refusal=refusal, max_page_size=100
    )
    ids, window, client = _run(server)
    assert set(ids) == _expected(records)
    assert len(ids) == 1250 and max(ids.values()) == 1
    assert window.reported_total == 1250 and window.records == 1250  # type: ignore[attr-defined]
    assert client.stats.window_narrowings >= 1  # type: ignore[attr-defined]
    bodies = [json.loads(r.content) for r in server.requests]
    assert any("conversation_created_at" in json.dumps(b) for b in bodies)  # the tie split
    # A cursor never asks for a deep page, so the wall is never met.
    assert {r.url.params["page"] for r in server.requests} == {"1"}


@pytest.mark.parametrize(
    "knobs",
    [
        {"omit_total": True},
        {"omit_total": True, "hide_page_size": True},
        {"unsorted": True},
        {"unsorted": True, "omit_total": True},
        {"next_style": "absolute_other_host"},
        {"refusal": "404", "unsorted": True},
    ],
    ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()),
)
def test_tolerant_variants(knobs: dict[str, object]) -> None:
    records = window_records(count=1250, tie=400)
    server = FakeKustomer(search={"conversation": records}, page_cap=3, **knobs)  # type: ignore[arg-type]
    ids, window, _ = _run(server)
    assert set(ids) == _expected(records)
    assert max(ids.values()) == 1
    assert {r.url.host for r in server.requests} == {"acme.api.kustomerapp.com"}
    if knobs.get("omit_total"):
        assert window.reported_total is None  # type: ignore[attr-defined]


def test_server_page_size_cap_below_request() -> None:
    records = window_records(count=700, tie=0)
    server = FakeKustomer(search={"conversation": records}, max_page_size=50, hide_page_size=True)
    ids, _, client = _run(server)
    assert len(ids) == 700
    # 14 pages of 50, plus at most one because each cursor page re-reads the records sharing
    # the previous page's last updatedAt, plus the closing count.
    assert 15 <= client.stats.pages <= 16  # type: ignore[attr-defined]


def test_unresolvable_tie_raises_incomplete() -> None:
    records = window_records(count=500, tie=400, same_created=True)
    server = FakeKustomer(search={"conversation": records}, page_cap=3)
    with pytest.raises(KustomerIncompleteError) as info:
        _run(server)
    text = str(info.value)
    assert "conversation" in text and "2026-11-01T00:00:00.000Z" in text
    assert "2026-11-02T00:00:00.000Z" in text and "reported 500" in text


def test_overreporting_total_raises_incomplete() -> None:
    records = window_records(count=150, tie=0)
    server = FakeKustomer(search={"conversation": records}, total_bias=10)
    with pytest.raises(KustomerIncompleteError) as info:
        _run(server)
    assert info.value.reported_total == 160
    assert info.value.received == 150


def test_records_that_left_the_window_are_not_a_shortfall() -> None:
    # The first page reports 150 but 10 records move out of the window before they are read.
    records = window_records(count=150, tie=0, outside=0)
    server = FakeKustomer(search={"conversation": records})
    original = server._search
    calls = {"n": 0}

    def moving(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        response = original(request)
        if calls["n"] == 1:
            moved = sorted(records, key=lambda r: r["attributes"]["updatedAt"])[-10:]
            for record in moved:
                record["attributes"]["updatedAt"] = "2026-11-05T00:00:00.000Z"
        return response

    server._search = moving  # type: ignore[method-assign]
    ids, window, _ = _run(server)
    assert window.reported_total == 150 and len(ids) == 140  # type: ignore[attr-defined]


def test_empty_and_reversed_windows() -> None:
    server = FakeKustomer(search={"conversation": []})
    ids, window, _ = _run(server)
    assert not ids and window.reported_total == 0  # type: ignore[attr-defined]
    with make_client(server) as client:
        w = client.search_window("note", WINDOW_END, WINDOW_START)
        assert list(w) == [] and w.records == 0


def test_search_budget_and_stats_under_default_limits() -> None:
    records = window_records(count=1250, tie=400)
    server = FakeKustomer(search={"conversation": records}, page_cap=3)
    clock = FakeClock()
    with make_client(server, clock, search_requests_per_minute=10) as client:
        total = sum(len(p) for p in client.search_window("conversation", WINDOW_START, WINDOW_END))
    assert total == 1250
    searches = client.stats.search_requests
    assert searches == server.count("/v1/customers/search", "POST")
    # 10 searches per sliding minute: the fake clock must have advanced accordingly
    assert clock.now >= (searches // 10 - 1) * 60
    assert client.stats.rate_limit_waits > 0


def test_window_and_naive_datetimes() -> None:
    records = window_records(count=20, tie=0, outside=0)
    server = FakeKustomer(search={"conversation": records})
    with make_client(server) as client:
        naive = client.search_window(
            "conversation",
            WINDOW_START.replace(tzinfo=None),
            (WINDOW_START + timedelta(hours=24)).replace(tzinfo=None),
            include_deleted=False,
        )
        assert sum(len(p) for p in naive) == 20
    assert json.loads(server.requests[0].content)["includeDeleted"] is False
