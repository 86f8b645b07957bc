"""What a raw asset's run says about itself, as one typed record written to and read back from
materialization metadata.

A range run writes many partitions at once. Each partition's materialization carries its own
figures (`dagster/row_count` is that day's rows, so the UI's plots are true) and the run's
figures under `run/...`, labelled as covering the whole run. The asset builds a `RunReport` and
writes `to_metadata()`; the checks read `RunReport.from_metadata(...)` and use its attributes.
A field renamed here is renamed for both sides at once (and a typo is an AttributeError, not a
check that silently finds no total). `from_metadata` also reads materializations written before
the `run/` prefix existed, and before some fields did (those come back as None).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import dagster as dg

RUN_PREFIX = "run/"
CLIENT_PREFIX = "kustomer/"
"""The client's counters (requests, retries, budget waits ...) sit under `run/kustomer/...`."""

SKIPPED = "skipped"
MISSING_ROLE = "missing_role"
REASON = "reason"


def run_key(name: str) -> str:
    """The metadata key of a run-wide figure (`api_reported_total` -> `run/api_reported_total`)."""
    return f"{RUN_PREFIX}{name}"


def _plain(value: Any) -> Any:
    """The Python value of a metadata entry, whether or not it is still a `MetadataValue`."""
    return value.value if isinstance(value, dg.MetadataValue) else value


def run_value(metadata: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A run-wide figure from a materialization's metadata values, old unprefixed keys too."""
    for key in (run_key(name), name):
        if key in metadata:
            return _plain(metadata[key])
    return default


def client_metadata(client: Mapping[str, int | float]) -> dict[str, int | float]:
    """The client's counters as run metadata (`run/kustomer/<counter>`)."""
    return {run_key(f"{CLIENT_PREFIX}{name}"): value for name, value in client.items()}


def _client_from(metadata: Mapping[str, Any]) -> dict[str, int | float]:
    counters: dict[str, int | float] = {}
    for prefix in (CLIENT_PREFIX, run_key(CLIENT_PREFIX)):  # the prefixed key wins
        for key, value in metadata.items():
            if key.startswith(prefix):
                counters[key.removeprefix(prefix)] = _plain(value)
    return counters


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class RunReport:
    """The figures of one run of one raw asset, over every window it loaded.

    Every field may be None: a report read back from an old materialization lacks the fields
    added since (`verified_by` None means the run predates proving windows by ids).
    """

    rows_written: int | None = None
    rows_per_day: dict[str, int] | None = None
    api_reported_total: int | None = None
    """Sum of what Kustomer counted for the windows; None when a window had no count."""
    records_fetched: int | None = None
    duplicates_dropped: int | None = None
    rows_outside_window: int | None = None
    not_found: int | None = None
    api_count_after: int | None = None
    changed_during_run: int | None = None
    refetched_after_id_check: int | None = None
    ids_unaccounted: int | None = None
    verified_by: str | None = None
    rows_with_unparsed_values: int | None = None
    schema_changes: list[str] | None = None
    commit_retries: int | None = None
    windows: int | None = None
    windows_resumed: int | None = None
    delta_version: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    client: dict[str, int | float] = field(default_factory=dict)
    """The client's counters (`ClientStats.as_dict()`)."""

    @property
    def verified(self) -> bool:
        """Whether the run proved its windows (by ids or by a count that did not move)."""
        return self.verified_by not in (None, "-", "")

    def to_metadata(self) -> dict[str, Any]:
        """`run/<field>` for every field, in field order, then `run/kustomer/<counter>`.

        Values keep the types the UI always showed: numbers and text as such, the per-day rows
        and the schema changes as JSON, the window bounds as ISO text.
        """
        metadata: dict[str, Any] = {}
        for item in fields(self):
            if item.name == "client":
                continue
            value = getattr(self, item.name)
            if item.name == "rows_per_day":
                value = dg.MetadataValue.json(dict(sorted((value or {}).items())))
            elif item.name == "schema_changes":
                value = dg.MetadataValue.json(sorted(value or []))
            elif isinstance(value, datetime):
                value = value.isoformat()
            metadata[run_key(item.name)] = value
        return {**metadata, **client_metadata(self.client)}

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> RunReport:
        """The report a materialization's metadata holds (values or `MetadataValue`s)."""
        raw = {item.name: run_value(values, item.name) for item in fields(cls)}
        per_day = raw["rows_per_day"]
        changes = raw["schema_changes"]
        verified_by = raw["verified_by"]
        ints = {
            name: _int(value)
            for name, value in raw.items()
            if name not in ("rows_per_day", "schema_changes", "verified_by", "client")
            and not name.startswith("window_")
        }
        return cls(
            **ints,
            rows_per_day=(
                {day: int(rows) for day, rows in per_day.items()}
                if isinstance(per_day, Mapping)
                else None
            ),
            schema_changes=[str(c) for c in changes] if isinstance(changes, list) else None,
            verified_by=None if verified_by is None else str(verified_by),
            window_start=_time(raw["window_start"]),
            window_end=_time(raw["window_end"]),
            client=_client_from(values),
        )


@dataclass(frozen=True)
class SkippedRun:
    """A run that left its entity out: switched off, or a missing optional role."""

    reason: str
    missing_role: str | None = None
    client: dict[str, int | float] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {SKIPPED: True}
        if self.missing_role is not None:
            metadata[MISSING_ROLE] = self.missing_role
        metadata[REASON] = self.reason
        return {**metadata, **client_metadata(self.client)}

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> SkippedRun | None:
        """The skip a materialization records, or None when the run loaded its entity."""
        if not _plain(values.get(SKIPPED)):
            return None
        role = _plain(values.get(MISSING_ROLE))
        return cls(
            reason=str(_plain(values.get(REASON)) or ""),
            missing_role=None if role is None else str(role),
            client=_client_from(values),
        )
