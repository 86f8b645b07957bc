"""`RunReport`: the run figures the raw assets write and the checks read back, one record."""

from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg

from kustomer_assets.run_report import RunReport, SkippedRun, run_value

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 3, tzinfo=UTC)
REPORT = RunReport(
    rows_written=7,
    rows_per_day={"2026-11-02": 4, "2026-11-01": 3},
    api_reported_total=7,
    records_fetched=9,
    duplicates_dropped=1,
    rows_outside_window=1,
    not_found=0,
    api_count_after=8,
    changed_during_run=1,
    refetched_after_id_check=2,
    ids_unaccounted=0,
    verified_by="ids",
    rows_with_unparsed_values=0,
    schema_changes=["b added", "a added"],
    commit_retries=0,
    windows=1,
    windows_resumed=0,
    delta_version=3,
    window_start=START,
    window_end=END,
    client={"requests": 12, "retries": 1, "wait_seconds": 0.5},
)
KEYS = [
    "run/rows_written",
    "run/rows_per_day",
    "run/api_reported_total",
    "run/records_fetched",
    "run/duplicates_dropped",
    "run/rows_outside_window",
    "run/not_found",
    "run/api_count_after",
    "run/changed_during_run",
    "run/refetched_after_id_check",
    "run/ids_unaccounted",
    "run/verified_by",
    "run/rows_with_unparsed_values",
    "run/schema_changes",
    "run/commit_retries",
    "run/windows",
    "run/windows_resumed",
    "run/delta_version",
    "run/window_start",
    "run/window_end",
    "run/kustomer/requests",
    "run/kustomer/retries",
    "run/kustomer/wait_seconds",
]


def plain(metadata: dict) -> dict:
    """What a check sees: the values of a stored materialization's metadata."""
    return {k: v.value if isinstance(v, dg.MetadataValue) else v for k, v in metadata.items()}


def test_metadata_keeps_the_keys_and_types_the_ui_shows() -> None:
    metadata = REPORT.to_metadata()
    assert list(metadata) == KEYS
    assert metadata["run/rows_per_day"] == dg.MetadataValue.json({"2026-11-01": 3, "2026-11-02": 4})
    assert metadata["run/schema_changes"] == dg.MetadataValue.json(["a added", "b added"])
    assert metadata["run/window_start"] == "2026-11-01T00:00:00+00:00"
    assert metadata["run/verified_by"] == "ids" and metadata["run/rows_written"] == 7


def test_round_trip() -> None:
    back = RunReport.from_metadata(plain(REPORT.to_metadata()))
    assert back == replace(REPORT, schema_changes=["a added", "b added"])  # stored sorted
    # MetadataValue objects are read as well as their values.
    assert RunReport.from_metadata(REPORT.to_metadata()).rows_per_day == REPORT.rows_per_day
    assert back.verified


def test_missing_figures_are_none_and_nothing_is_made_up() -> None:
    report = RunReport.from_metadata({"run/api_reported_total": None, "dagster/row_count": 3})
    assert report.api_reported_total is None and report.rows_written is None
    assert report.window_start is None and report.rows_per_day is None
    assert report.client == {} and not report.verified
    assert not RunReport(verified_by="-").verified
    # A run with no window reported a null total: stored as such, not as 0.
    assert RunReport(windows=0).to_metadata()["run/api_reported_total"] is None


def test_old_unprefixed_keys_are_read_and_the_prefixed_one_wins() -> None:
    old = {
        "api_reported_total": 5,
        "rows_written": 5,
        "window_start": "2026-11-01T00:00:00+00:00",
        "window_end": "2026-11-02T00:00:00+00:00",
        "kustomer/requests": 4,
    }
    report = RunReport.from_metadata(old)
    assert (report.api_reported_total, report.rows_written) == (5, 5)
    assert report.window_end == datetime(2026, 11, 2, tzinfo=UTC)
    assert report.client == {"requests": 4}
    both = RunReport.from_metadata({**old, "run/rows_written": 6, "run/kustomer/requests": 9})
    assert both.rows_written == 6 and both.client == {"requests": 9}
    assert run_value({**old, "run/rows_written": 6}, "rows_written") == 6


def test_skipped_run() -> None:
    skipped = SkippedRun("lacks the role", "org.permission.note.read", {"requests": 2})
    metadata = skipped.to_metadata()
    assert metadata == {
        "skipped": True,
        "missing_role": "org.permission.note.read",
        "reason": "lacks the role",
        "run/kustomer/requests": 2,
    }
    assert SkippedRun.from_metadata(metadata) == skipped
    toggled = {"skipped": dg.MetadataValue.bool(True), "reason": "disabled by X=false"}
    assert SkippedRun.from_metadata(toggled) == SkippedRun("disabled by X=false")
    assert SkippedRun.from_metadata(plain(REPORT.to_metadata())) is None
