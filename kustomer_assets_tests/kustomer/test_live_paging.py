"""Search windows on an org that changes between page requests, and the id check after them.

The fake server here is not our emulator: its ties, page caps and idsOnly readings are knobs,
so the client is proven against servers it was not written with.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from kustomer_assets.kustomer import KustomerIncompleteError
from kustomer_assets_tests.kustomer.fake_server import (
    WINDOW_END,
    WINDOW_START,
    FakeKustomer,
    iso,
    make_client,
    parse_iso,
    window_records,
)


def _versions(records: list[dict[str, Any]]) -> dict[str, str]:
    return {r["id"]: r["attributes"]["updatedAt"] for r in records}


def _in_window(records: list[dict[str, Any]]) -> dict[str, str]:
    lo, hi = iso(WINDOW_START), iso(WINDOW_END)
    return {i: u for i, u in _versions(records).items() if lo <= u < hi}


def _read(server: FakeKustomer, **overrides: object) -> tuple[list[tuple[str, str]], Any]:
    with make_client(server, **overrides) as client:
        window = client.search_window("conversation", WINDOW_START, WINDOW_END)
        got = [(r["id"], r["attributes"]["updatedAt"]) for page in window for r in page]
    return got, window


class Churn:
    """Touches `per_page` records of the window after every search answer: some already
    served, some not yet, as agents do while a sync pages."""

    def __init__(self, records: list[dict[str, Any]], per_page: int, *, today: bool) -> None:
        self.records = records
        self.per_page = per_page
        self.today = today
        self.touched: set[str] = set()
        self.versions: dict[str, set[str]] = {}  # every version a touched record had
        self.rng = random.Random(5)
        self.clock = WINDOW_END - timedelta(hours=2)

    def __call__(self, server: FakeKustomer, body: dict[str, Any]) -> None:
        inside = _in_window(self.records)
        live = [r for r in self.records if r["id"] in inside]
        for record in self.rng.sample(live, min(self.per_page, len(live))):
            self.touched.add(record["id"])
            self.versions.setdefault(record["id"], set()).add(record["attributes"]["updatedAt"])
            if self.today:  # the record jumps to the end of today's window
                self.clock += timedelta(milliseconds=1)
                record["attributes"]["updatedAt"] = iso(self.clock)
            else:  # it leaves the past window for today
                record["attributes"]["updatedAt"] = iso(WINDOW_END + timedelta(hours=3))
            self.versions[record["id"]].add(record["attributes"]["updatedAt"])


@pytest.mark.parametrize("today", [False, True], ids=["past_window", "todays_window"])
@pytest.mark.parametrize("page_size", [100, 37])
def test_changes_between_page_requests_lose_nothing(today: bool, page_size: int) -> None:
    records = window_records(count=1200, tie=150, outside=20)
    before = _in_window(records)
    churn = Churn(records, per_page=4, today=today)
    server = FakeKustomer(
        search={"conversation": records}, max_page_size=page_size, after_search=churn
    )
    got, window = _read(server)
    keys = Counter(got)
    assert max(keys.values()) == 1, "a version was served twice"
    by_id: dict[str, set[str]] = {}
    for rid, updated in got:
        by_id.setdefault(rid, set()).add(updated)
    untouched = {i: u for i, u in before.items() if i not in churn.touched}
    assert len(churn.touched) > 20
    missing = [i for i in untouched if i not in by_id]
    assert not missing, f"{len(missing)} untouched records lost, e.g. {missing[:3]}"
    assert all(by_id[i] == {u} for i, u in untouched.items()), "untouched at another version"
    for rid in churn.touched:
        assert by_id.get(rid, set()) <= churn.versions[rid], "a version the record never had"
        if today:  # both versions stay inside the window: at least one must be there
            assert by_id.get(rid), f"touched record {rid} lost"
    assert not set(by_id) - set(before), "a record from outside the window leaked in"
    if today:
        assert window.reconciliation.verified_by == "ids"


def test_a_flaky_index_is_caught_by_the_id_check_and_re_read() -> None:
    records = window_records(count=900, tie=0, outside=0)
    victim = sorted(records, key=lambda r: r["attributes"]["updatedAt"])[450]["id"]
    server = FakeKustomer(
        search={"conversation": records}, ids_only="honor", omit_from_pages={victim: 1}
    )
    got, window = _read(server)
    assert {rid for rid, _ in got} == {r["id"] for r in records}
    rec = window.reconciliation
    assert rec.verified_by == "ids" and rec.refetched == 1 and rec.unaccounted == 0
    # The re-read is a narrow cursor query around the victim, not a second full pass.
    data = [json.loads(r.content) for r in server.requests if "idsOnly" not in r.url.params]
    reread = data[-1]["and"]
    span = parse_iso(reread[1]["conversation_updated_at"]["lt"]) - parse_iso(
        reread[0]["conversation_updated_at"]["gte"]
    )
    assert span < timedelta(hours=1)
    assert len(data) <= 9 + 1 + 2  # 9 cursor pages of 100, the count, the re-read


def test_an_id_that_cannot_be_read_fails_naming_the_window() -> None:
    records = window_records(count=300, tie=0, outside=0)
    victim = records[10]["id"]
    server = FakeKustomer(
        search={"conversation": records}, ids_only="honor", omit_from_pages={victim: 10_000}
    )
    with pytest.raises(KustomerIncompleteError) as info:
        _read(server)
    text = str(info.value)
    assert iso(WINDOW_START) in text and iso(WINDOW_END) in text
    assert victim in text and "could not be read" in text


@pytest.mark.parametrize("mode", ["honor", "ignore", "reject"])
def test_every_idsonly_reading_verifies(mode: str) -> None:
    records = window_records(count=400, tie=0, outside=0)
    churn = Churn(records, per_page=2, today=False)
    server = FakeKustomer(search={"conversation": records}, ids_only=mode, after_search=churn)
    got, window = _read(server)
    untouched = {i: u for i, u in _in_window(records).items() if i not in churn.touched}
    assert set(untouched.items()) <= set(got)
    assert window.reconciliation.verified_by == "ids"
    assert window.reconciliation.changed_during_run >= 1


def test_a_quiet_window_is_proven_by_one_count() -> None:
    records = window_records(count=250, tie=0, outside=0)
    server = FakeKustomer(search={"conversation": records})
    got, window = _read(server)
    assert len(got) == 250
    assert window.reconciliation.verified_by == "counts"
    assert window.reconciliation.count_after == 250
    assert len(server.requests) == 3 + 1
    server.requests.clear()
    got, window = _read(server, search_verify="always")
    assert window.reconciliation.verified_by == "ids" and len(got) == 250


def test_a_tie_larger_than_a_page_while_its_members_change() -> None:
    records = window_records(count=700, tie=450, outside=0)
    churn = Churn(records, per_page=3, today=False)
    server = FakeKustomer(search={"conversation": records}, page_cap=3, after_search=churn)
    got, _ = _read(server)
    untouched = {
        r["id"]: r["attributes"]["updatedAt"] for r in records if r["id"] not in churn.touched
    }
    assert set(untouched.items()) <= set(got)
    assert max(Counter(got).values()) == 1
