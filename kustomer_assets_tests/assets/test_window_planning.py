"""How a run over a partition range is cut into windows, and which specs the factory follows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from kustomer_assets.assets.raw import SNAPSHOT_DAYS, WINDOW_DAYS, plan_windows
from kustomer_assets.entities import CONVERSATIONS, CUSTOMERS, TAGS

START = datetime(2026, 10, 1, tzinfo=UTC)


def test_a_range_is_cut_into_week_windows_that_tile_it_exactly() -> None:
    end = START + timedelta(days=17)
    windows = plan_windows(CONVERSATIONS, START, end)
    assert [w[1] for w in windows] == [START + timedelta(days=d) for d in (0, 7, 14)]
    assert [w[2] for w in windows] == [START + timedelta(days=d) for d in (7, 14, 17)]
    # the days each window replaces are its own fetch range, end exclusive
    assert windows[-1][0] == (date(2026, 10, 15), date(2026, 10, 18))
    assert all((w[2] - w[1]) <= timedelta(days=WINDOW_DAYS) for w in windows)


def test_one_day_is_one_window() -> None:
    windows = plan_windows(CUSTOMERS, START, START + timedelta(days=1))
    assert windows == [((date(2026, 10, 1), date(2026, 10, 2)), START, START + timedelta(days=1))]


def test_a_snapshot_list_is_one_window_over_every_day() -> None:
    end = START + timedelta(days=30)
    assert plan_windows(TAGS, START, end) == [(SNAPSHOT_DAYS, START, end)]
