"""The search decisions that need no server: the body, where the cursor moves, how a range is
narrowed, and when counts alone prove a window complete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kustomer_assets.kustomer.jsonapi import int_or_none, parse_time
from kustomer_assets.kustomer.search import SEARCH_PATH, search_body
from kustomer_assets.kustomer.search.completeness import counts_prove_complete, ranges_around
from kustomer_assets.kustomer.search.plan import (
    EARLIEST,
    LATEST,
    Page,
    Query,
    cursor_step,
    has_more,
    midpoint,
    narrow,
    query_allowance,
    read_page,
)

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 2, tzinfo=UTC)


def _at(ms: int) -> datetime:
    return START + timedelta(milliseconds=ms)


def _record(rid: str, updated: datetime | None) -> dict[str, Any]:
    stamp = None if updated is None else updated.isoformat().replace("+00:00", "Z")
    return {"type": "conversation", "id": rid, "attributes": {"updatedAt": stamp}}


def _page(n: int, *, last: datetime | None, total: int | None = None) -> Page:
    records = [_record(str(i), last) for i in range(n)]
    return Page(records=records, total=total, next_link=None, sorted_ok=True, last_value=last)


# -- the body ----------------------------------------------------------------------------------


def test_a_window_body_is_a_half_open_range_sorted_on_its_field() -> None:
    assert SEARCH_PATH == "/v1/customers/search"
    assert search_body("conversation", since=START, until=END, include_deleted=True) == {
        "queryContext": "conversation",
        "and": [
            {"conversation_updated_at": {"gte": "2026-11-01T00:00:00.000Z"}},
            {"conversation_updated_at": {"lt": "2026-11-02T00:00:00.000Z"}},
        ],
        "sort": [{"conversation_updated_at": "asc"}],
        "includeDeleted": True,
    }


def test_a_tie_body_keeps_its_fixed_criteria_first_and_sorts_on_created_at() -> None:
    fixed = ({"note_updated_at": {"gte": "x"}},)
    body = search_body("note", since=EARLIEST, until=LATEST, on="created", fixed=fixed)
    assert body["and"][0] == fixed[0]
    assert body["and"][1] == {"note_created_at": {"gte": "1970-01-01T00:00:00.000Z"}}
    assert body["sort"] == [{"note_created_at": "asc"}]
    assert "includeDeleted" not in body  # None leaves the server's default


def test_a_probe_body_has_only_its_lower_bound_and_no_sort() -> None:
    assert search_body("customer", since=START, sort=False) == {
        "queryContext": "customer",
        "and": [{"customer_updated_at": {"gte": "2026-11-01T00:00:00.000Z"}}],
    }
    assert search_body("conversation", sort=False) == {"queryContext": "conversation", "and": []}


# -- reading a page ----------------------------------------------------------------------------


def test_read_page_trusts_order_only_when_ascending_and_inside_the_query() -> None:
    query = Query("updated", _at(0), _at(100))

    def read(*stamps: datetime | None) -> Page:
        data = [_record(str(i), s) for i, s in enumerate(stamps)]
        return read_page({"data": data, "meta": {"total": "7"}, "links": {"next": " "}}, query)

    page = read(_at(1), _at(1), _at(5))
    assert page.sorted_ok and page.last_value == _at(5)
    assert page.total == 7 and page.next_link is None  # a blank link is no link
    assert not read(_at(5), _at(1)).sorted_ok  # descending
    assert not read(_at(1), None).sorted_ok  # a record without the field
    assert not read(_at(1), _at(100)).sorted_ok  # outside [lo, hi): criteria ignored
    assert read().last_value is None


def test_has_more_prefers_the_total_then_the_next_link_then_a_full_page() -> None:
    full = _page(3, last=_at(1))
    assert has_more(full, page_hint=3)
    assert not has_more(full, page_hint=4)
    assert not has_more(_page(3, last=_at(1), total=3), page_hint=3)
    assert has_more(_page(3, last=_at(1), total=4), page_hint=100)
    linked = Page(full.records, None, "/v1/customers/search?page=2", True, _at(1))
    assert has_more(linked, page_hint=100)


# -- the cursor --------------------------------------------------------------------------------


def test_the_cursor_moves_to_the_last_millisecond_of_a_full_page() -> None:
    last = _at(40) + timedelta(microseconds=700)  # sub-ms precision is floored
    step = cursor_step(_page(5, last=last), _at(10), _at(100), page_hint=5)
    assert (step.action, step.at) == ("advance", _at(40))


def test_a_full_page_that_is_one_millisecond_splits_that_tie() -> None:
    step = cursor_step(_page(5, last=_at(10)), _at(10), _at(100), page_hint=5)
    assert (step.action, step.at, step.until) == ("split_tie", _at(10), _at(11))
    # The tie's upper bound never passes the query's end.
    end = _at(10) + timedelta(microseconds=300)
    assert cursor_step(_page(5, last=_at(10)), _at(10), end, page_hint=5).until == end


def test_the_cursor_stops_on_a_last_page_or_a_page_without_times() -> None:
    assert cursor_step(_page(4, last=_at(40)), _at(10), _at(100), page_hint=5).action == "stop"
    assert cursor_step(_page(5, last=None), _at(10), _at(100), page_hint=5).action == "stop"


def test_the_query_allowance_grows_with_the_records_known() -> None:
    assert query_allowance(0, 500) == 304
    assert query_allowance(1_000, 500) == 300 + 4 * 3
    assert query_allowance(10, 0) == query_allowance(10, 1)  # no division by a zero page


# -- narrowing an unsorted range ---------------------------------------------------------------


def test_an_unsorted_range_is_halved_oldest_first_on_a_millisecond() -> None:
    query = Query("updated", _at(0), _at(3), ({"fixed": 1},))
    lower, upper = narrow("conversation", query)
    assert (lower.lo, lower.hi, upper.lo, upper.hi) == (_at(0), _at(1), _at(1), _at(3))
    assert lower.fixed == upper.fixed == query.fixed
    assert midpoint(_at(0), _at(4)) == _at(2)
    assert midpoint(_at(0), _at(1) + timedelta(microseconds=500)) == _at(1)  # never at lo


def test_one_millisecond_of_updated_at_is_read_by_created_at() -> None:
    (tie,) = narrow("message", Query("updated", _at(7), _at(8)))
    assert (tie.on, tie.lo, tie.hi) == ("created", EARLIEST, LATEST)
    assert tie.fixed == (
        {"message_updated_at": {"gte": "2026-11-01T00:00:00.007Z"}},
        {"message_updated_at": {"lt": "2026-11-01T00:00:00.008Z"}},
    )
    # A tie in both timestamps has nothing narrower: only page numbers are left.
    assert narrow("message", Query("created", _at(7), _at(8), tie.fixed)) == []


# -- completeness ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count_after", "reported", "ids", "versions", "verify", "proven"),
    [
        (120, 120, 120, 120, "auto", True),  # nothing moved: one count request proves it
        (120, 120, 120, 120, "always", False),  # asked to list ids every time
        (120, 120, 120, 121, "auto", False),  # a record was read in two versions: it moved
        (121, 120, 120, 120, "auto", False),  # one appeared (or moved in) since
        (120, 121, 120, 120, "auto", False),  # the first total promised one we never read
        (None, None, 0, 0, "auto", False),  # no count reported: only ids can tell
    ],
)
def test_counts_prove_a_window_complete_only_when_nothing_moved(
    count_after: int | None,
    reported: int | None,
    ids: int,
    versions: int,
    verify: str,
    proven: bool,
) -> None:
    assert (
        counts_prove_complete(
            count_after=count_after,
            reported_total=reported,
            distinct_ids=ids,
            versions=versions,
            verify=verify,
        )
        is proven
    )


def test_a_missing_id_is_re_read_between_its_known_neighbours() -> None:
    latest = {"a": _at(10) + timedelta(microseconds=500), "c": _at(30), "e": _at(50)}
    listing = ["a", "b", "c", "d", "e", "f"]
    # b sits between a and c, d between c and e: adjacent ranges merge; f is after e.
    assert ranges_around(listing, [1, 3], latest, START, END) == [(_at(10), _at(51))]
    assert ranges_around(listing, [5], latest, START, END) == [(_at(50), END)]
    assert ranges_around(["x", "a"], [0], latest, START, END) == [(START, _at(11))]


def test_the_public_parsers_are_tolerant() -> None:
    assert parse_time("2026-11-01T00:00:00.007Z") == _at(7)
    assert parse_time("2026-11-01T01:00:00+01:00") == START
    assert parse_time("2026-11-01T00:00:00") == START  # naive means UTC
    assert parse_time("yesterday") is None and parse_time(None) is None
    assert [int_or_none(v) for v in (5, 5.0, " 5 ", True, 5.5, "x")] == [5, 5, 5, None, None, None]
