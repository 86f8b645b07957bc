"""Turn Kustomer JSON:API resources into typed, snake_case table rows.

Kustomer returns camelCase attributes, relationship objects and an open-ended `custom` map whose
keys carry their type as a suffix (`orderIdStr`, `refundAmountNum`, `vipBool`, `purchasedAt` ...).
Every column's type is decided here, at the boundary, so that each batch of a run -- and each run
of a table -- agrees on the schema: a column that is all-null in one batch must not become a
`Null` column that later fails to merge with a `Float64` one.

Nothing here calls the network or knows about storage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

TIMESTAMP = pl.Datetime("us", "UTC")
ID_LIST = pl.List(pl.Utf8)
TEXT_LIST = pl.List(pl.Utf8)

PARTITION_COLUMN = "partition_date"
"""UTC day of `updated_at`: the Dagster partition a row belongs to."""

EXTRA_ATTRIBUTES_COLUMN = "extra_attributes"
"""Attributes this version does not map yet, kept as JSON so an API addition is never lost."""


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

    def extract(self, resource: Mapping[str, Any]) -> Any:
        value = _walk(resource, self.path)
        if self.derive is not None:
            value = self.derive(value)
        return coerce(value, self.dtype)


def attr(name: str, key: str, dtype: pl.DataType, description: str) -> Column:
    """A column read from `attributes.<key>`."""
    return Column(name, ("attributes", *key.split(".")), dtype, description)


def rel(name: str, relationship: str, description: str) -> Column:
    """An id column read from a to-one relationship (`relationships.<rel>.data.id`)."""
    return Column(name, ("relationships", relationship, "data", "id"), pl.Utf8, description)


def _walk(value: Any, path: Sequence[str]) -> Any:
    for i, step in enumerate(path):
        if step == "*":
            if not isinstance(value, list):
                return None
            rest = path[i + 1 :]
            return [_walk(item, rest) for item in value]
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


# --- scalar coercion -------------------------------------------------------------------------


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 (with `Z` or an offset) or epoch milliseconds -> aware UTC datetime.

    Kustomer documents `2026-11-20T16:34:00.000Z`; epoch numbers and offsets are accepted so a
    server that deviates does not turn every timestamp into null.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _to_int(value: Any) -> int | None:
    number = _to_float(value)
    if number is None or number != number:  # NaN
        return None
    return int(number)


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "yes", "1"}:
            return True
        if lowered in {"false", "no", "0"}:
            return False
    return None


def _to_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _to_text_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, Mapping) and "id" in item:  # relationship identifiers
            item = item["id"]
        text = _to_text(item)
        if text is not None:
            out.append(text)
    return out


def coerce(value: Any, dtype: pl.DataType) -> Any:
    """Bring a JSON value to the Python type polars expects for `dtype`, or None."""
    if value is None:
        return None
    if dtype == TIMESTAMP:
        return parse_timestamp(value)
    if dtype == pl.Float64:
        return _to_float(value)
    if dtype == pl.Int64:
        return _to_int(value)
    if dtype == pl.Boolean:
        return _to_bool(value)
    if isinstance(dtype, pl.List):
        return _to_text_list(value)
    return _to_text(value)


# --- custom attributes -----------------------------------------------------------------------

CUSTOM_SUFFIX_TYPES: dict[str, pl.DataType] = {
    "Str": pl.Utf8,
    "Txt": pl.Utf8,
    "Tree": pl.Utf8,
    "Url": pl.Utf8,
    "Id": pl.Utf8,
    "Num": pl.Float64,
    "Bool": pl.Boolean,
    "At": TIMESTAMP,
}
"""Kustomer types a custom attribute by its name's suffix (see the API notes)."""

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")


def snake_case(name: str) -> str:
    """`contactReasonTree` -> `contact_reason_tree`; also folds odd characters to `_`."""
    spaced = _CAMEL_BOUNDARY.sub("_", name)
    return _NON_WORD.sub("_", spaced).strip("_").lower()


def custom_column_name(attribute: str) -> str:
    """The column for custom attribute `attribute`, keeping its suffix so names stay unique
    (`vipStr` and `vipBool` may both exist) and traceable to the Kustomer field."""
    return f"custom_{snake_case(attribute)}"


def custom_dtype(attribute: str) -> pl.DataType:
    """Type from the suffix; the longest matching suffix wins (`...At` vs `...Str`)."""
    for suffix in sorted(CUSTOM_SUFFIX_TYPES, key=len, reverse=True):
        if attribute.endswith(suffix) and len(attribute) > len(suffix):
            return CUSTOM_SUFFIX_TYPES[suffix]
    return pl.Utf8


# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordMapper:
    """Maps resources of one entity to rows: fixed columns, typed custom columns, leftovers."""

    columns: tuple[Column, ...]
    keep_custom: bool = True
    mapped_attributes: frozenset[str] = frozenset()

    @property
    def base_schema(self) -> dict[str, pl.DataType]:
        schema = {c.name: c.dtype for c in self.columns}
        schema[EXTRA_ATTRIBUTES_COLUMN] = pl.Utf8
        schema[PARTITION_COLUMN] = pl.Date
        return schema

    def row(self, resource: Mapping[str, Any], custom_types: dict[str, pl.DataType]) -> dict:
        """One row; records the type of every custom column it meets in `custom_types`."""
        row = {c.name: c.extract(resource) for c in self.columns}
        attributes = resource.get("attributes") or {}
        custom = attributes.get("custom") if self.keep_custom else None
        if isinstance(custom, Mapping):
            for key, value in custom.items():
                name, dtype = custom_column_name(key), custom_dtype(key)
                custom_types.setdefault(name, dtype)
                row[name] = coerce(value, custom_types[name])
        extra = {
            k: v
            for k, v in attributes.items()
            if k not in self.mapped_attributes and k != "custom" and v is not None
        }
        row[EXTRA_ATTRIBUTES_COLUMN] = (
            json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None
        )
        updated_at = row.get("updated_at")
        row[PARTITION_COLUMN] = updated_at.date() if isinstance(updated_at, datetime) else None
        return row

    def frame(self, resources: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
        """A typed frame for one batch; custom columns present in the batch get suffix types."""
        custom_types: dict[str, pl.DataType] = {}
        rows = [self.row(r, custom_types) for r in resources]
        schema = {**self.base_schema, **dict(sorted(custom_types.items()))}
        return pl.DataFrame(rows, schema=schema)


def mapped_attribute_names(columns: Iterable[Column]) -> frozenset[str]:
    """Top-level attribute keys a column set already covers (so they stay out of extras)."""
    return frozenset(c.path[1] for c in columns if len(c.path) > 1 and c.path[0] == "attributes")
