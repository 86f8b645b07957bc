"""Columns: where a value sits in a JSON:API resource, its type, and the columns every table has.

`Column` is what the spec table (`entities.py`) declares per entity; `attr` and `rel` are the
two common shapes. Walking a path reports a value that is not where the path expects it (a
misfit) instead of quietly returning null, so nothing Kustomer sends is lost.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from kustomer_assets.lake import PARTITION_COLUMN
from kustomer_assets.records.values import UNPARSABLE, convert

EXTRA_ATTRIBUTES_COLUMN = "extra_attributes"
"""Attributes this version does not map yet, kept as JSON so an API addition is never lost."""

UNPARSED_COLUMN = "unparsed_values"
"""Values that did not fit their column's type, kept as sent so a bad value is never lost."""

BASE_COLUMN_DESCRIPTIONS: Final[dict[str, str]] = {
    EXTRA_ATTRIBUTES_COLUMN: (
        "Attributes Kustomer sent that have no column of their own yet, as a JSON object "
        "(attribute name -> value as sent). Null when every attribute has a column."
    ),
    UNPARSED_COLUMN: (
        'Values Kustomer sent that did not fit their column\'s type, e.g. "N/A" or "3,50" in '
        'a number field or "soon" in a date field: a JSON object from the source attribute '
        "(`priority`, `custom.refundAmountNum` ...) to the value exactly as sent. The typed "
        "column is null on that row, so look here before reading a null as 'no value'. Null "
        "when every value fit."
    ),
    PARTITION_COLUMN: "UTC day of `updated_at`: the daily partition the row belongs to.",
}
"""What analysts read about the columns every table has (the UI's column schema)."""


@dataclass(frozen=True)
class Misfit:
    """A value at `source` that could not be read as its column needs, kept as sent."""

    source: str
    value: Any


def _source_name(steps: Sequence[str]) -> str:
    """Name an analyst recognises: the attribute path as Kustomer spells it (`priority`,
    `satisfactionLevel.rating`), or the full path outside `attributes` (`relationships.x.data`)."""
    if len(steps) > 1 and steps[0] == "attributes":
        steps = steps[1:]
    return ".".join(steps)


def _walk(
    value: Any, path: Sequence[str], walked: tuple[str, ...] = ()
) -> tuple[Any, Misfit | None]:
    """Follow `path`; a non-container met where the path goes on is a misfit, not a silent null
    (`firstResponse: "x"` must not quietly erase what `firstResponse.time` would have held)."""
    for i, step in enumerate(path):
        if value is None:
            return None, None
        if step == "*":
            if not isinstance(value, list):
                return None, Misfit(_source_name(walked), value)
            rest = path[i + 1 :]
            items = [_walk(item, rest, walked) for item in value]
            misfit = Misfit(_source_name(walked), value) if any(m for _, m in items) else None
            return [item for item, _ in items], misfit
        if not isinstance(value, Mapping):
            return None, Misfit(_source_name(walked), value)
        value = value.get(step)
        walked = (*walked, step)
    return value, None


@dataclass(frozen=True)
class Column:
    """One typed column taken from a path inside a JSON:API resource.

    `path` walks dicts by key; the special step `"*"` maps the rest of the path over a list,
    which is how relationship lists (`relationships.assignedUsers.data[*].id`) become id lists.
    """

    name: str
    path: tuple[str, ...]
    dtype: pl.DataType
    description: str
    derive: Callable[[Any], Any] | None = None
    """Optional step applied to the value at `path` before coercion (e.g. pick free-text
    answers out of a CSAT answer list)."""

    @property
    def source(self) -> str:
        return _source_name(self.path)

    def read(self, resource: Mapping[str, Any]) -> tuple[Any, Misfit | None]:
        """The typed value, and what could not be typed (as sent) when something did not fit."""
        raw, misfit = _walk(resource, self.path)
        value = self.derive(raw) if self.derive is not None else raw
        typed = convert(value, self.dtype)
        if typed is UNPARSABLE:
            return None, Misfit(self.source, raw)
        return typed, misfit

    def extract(self, resource: Mapping[str, Any]) -> Any:
        """The typed value alone (None when it did not fit)."""
        return self.read(resource)[0]


def attr(name: str, key: str, dtype: pl.DataType, description: str) -> Column:
    """A column read from `attributes.<key>`."""
    return Column(name, ("attributes", *key.split(".")), dtype, description)


def rel(name: str, relationship: str, description: str) -> Column:
    """An id column read from a to-one relationship (`relationships.<rel>.data.id`)."""
    return Column(name, ("relationships", relationship, "data", "id"), pl.Utf8, description)


def mapped_attribute_names(columns: Iterable[Column]) -> frozenset[str]:
    """Top-level attribute keys a column set already covers (so they stay out of extras)."""
    return frozenset(c.path[1] for c in columns if len(c.path) > 1 and c.path[0] == "attributes")


def unparsed_counts(frame: pl.DataFrame) -> Counter[str]:
    """Rows per source attribute whose value was kept in `unparsed_values`, for run metadata
    (e.g. `{"custom.refundAmountNum": 3}`); only rows that have such values are decoded."""
    counts: Counter[str] = Counter()
    if UNPARSED_COLUMN not in frame.columns:
        return counts
    for text in frame.get_column(UNPARSED_COLUMN).drop_nulls():
        counts.update(json.loads(text).keys())
    return counts


def rows_with_unparsed_values(frame: pl.DataFrame) -> int:
    """Rows that kept at least one value in `unparsed_values`."""
    if UNPARSED_COLUMN not in frame.columns:
        return 0
    return frame.height - frame.get_column(UNPARSED_COLUMN).null_count()
